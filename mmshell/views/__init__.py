"""Read-only rich renderables over the simulated kernel's state (the `show` views and step results).

Each view is built from the kernel state at construction time (so it is a
snapshot), renders with `__rich__`, and gives the same facts as plain JSON
data with `to_json()`.  Views import `mmshell.mm` and rich only.

Import the module of the view you need (`from mmshell.views.pt import PageTableView`);
this package imports nothing itself, so a command that shows one view loads one.
"""

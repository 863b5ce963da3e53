"""The page `mmshell run FILE --html OUT.html` writes: every step of a run, one shown at a time.

Self-contained: the styles and the script are inline and nothing is fetched,
so the page works offline and from a USB stick.  Each step is a <section>
(the command, what it printed: output, changes and counters, and the map of
the current process after it); Previous/Next buttons, the left and right arrow
keys, Home and End move between them, and the address's #N names step N.
`str.format` fields: title, count, sections, commands (a JSON list).
"""

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: sans-serif; background: #ffffff; color: #141414; }}
header {{ position: sticky; top: 0; background: #f2f2f2; border-bottom: 1px solid #ccc; padding: 8px 16px;
          display: flex; gap: 12px; align-items: center; }}
header h1 {{ font-size: 1.1em; margin: 0 12px 0 0; }}
button {{ font-size: 1em; padding: 2px 12px; }}
#position {{ font-family: monospace; }}
#hint {{ color: #666; font-size: 0.9em; }}
main {{ padding: 8px 16px; }}
h2.command {{ font-family: monospace; font-size: 1.1em; }}
pre.step-body {{ font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 14px; line-height: 1.25;
                 margin: 0; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<button id="prev" type="button" title="previous step (left arrow)">&larr; previous</button>
<span id="position">step 1 of {count}</span>
<button id="next" type="button" title="next step (right arrow)">next &rarr;</button>
<span id="hint">left/right arrow keys step through the run; Home, End</span>
</header>
<main>
{sections}
</main>
<script>
"use strict";
const COMMANDS = {commands};
const steps = Array.from(document.querySelectorAll("section.step"));
let current = 0;
function show(i) {{
  if (steps.length === 0) return;
  current = Math.max(0, Math.min(steps.length - 1, i));
  steps.forEach((s, j) => {{ s.hidden = j !== current; }});
  document.getElementById("position").textContent = "step " + (current + 1) + " of " + steps.length;
  document.getElementById("prev").disabled = current === 0;
  document.getElementById("next").disabled = current === steps.length - 1;
  document.title = "{title}: " + (COMMANDS[current] || "");
  if (location.hash !== "#" + (current + 1)) history.replaceState(null, "", "#" + (current + 1));
}}
document.getElementById("prev").addEventListener("click", () => show(current - 1));
document.getElementById("next").addEventListener("click", () => show(current + 1));
document.addEventListener("keydown", (e) => {{
  if (e.key === "ArrowRight" || e.key === "PageDown") {{ show(current + 1); e.preventDefault(); }}
  else if (e.key === "ArrowLeft" || e.key === "PageUp") {{ show(current - 1); e.preventDefault(); }}
  else if (e.key === "Home") {{ show(0); e.preventDefault(); }}
  else if (e.key === "End") {{ show(steps.length - 1); e.preventDefault(); }}
}});
const fromHash = parseInt(location.hash.slice(1), 10);
show(Number.isFinite(fromHash) ? fromHash - 1 : 0);
</script>
</body>
</html>
"""

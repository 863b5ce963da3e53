"""The summary line of a stateful mode: steps, refused share, refusals by command and errno."""

from __future__ import annotations


def refusal_lines(mode: str, st) -> list[str]:
    """The summary of one mode: steps, refused share, deliberate share, refusals by command and errno."""
    wall = st["wall"] or 1e-9
    steps = st["steps"] or 1
    random_steps = steps - st["deliberate"]
    line = (f"{mode}: {st['rules']} rule steps ({st['steps']} commands) in {st['runs']} runs, "
            f"{wall:.0f} s ({st['rules'] / wall:.0f} steps/s); {st['refused']} refused "
            f"({100 * st['refused'] / steps:.1f}%): {st['refused random']} of {random_steps} random commands "
            f"({100 * st['refused random'] / max(1, random_steps):.1f}%), {st['refused deliberate']} of "
            f"{st['deliberate']} deliberately invalid ones; {st['partial']} with the kernel's partial effect")
    by = sorted(((n, key[len("refused "):]) for key, n in st.items()
                 if key.startswith("refused ") and key not in ("refused random", "refused deliberate")),
                reverse=True)
    lines = [line]
    if by:
        lines.append("  refused: " + ", ".join(f"{what} {n}" for n, what in by[:16])
                     + (f", {len(by) - 16} more kinds" if len(by) > 16 else ""))
    return lines

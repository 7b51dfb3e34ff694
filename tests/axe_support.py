"""Accessibility checks for browser tests: axe-core (from package.json, installed by `make test`)
run against a Playwright page for WCAG 2.1 A and AA, keeping the serious and critical violations."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE_JS = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MAX_NODES = 5  # nodes kept per violation

# runs axe on the document (minus the excluded selectors) and returns its violations, each with
# the targets and failure summaries of its first nodes
RUN_AXE_JS = """
async ({tags, exclude, maxNodes}) => {
  const context = exclude.length
    ? {include: [document], exclude: exclude.map((selector) => [selector])}
    : document;
  const results = await axe.run(context, {
    runOnly: {type: 'tag', values: tags},
    resultTypes: ['violations'],
  });
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, maxNodes).map((n) => ({
      target: n.target,
      failureSummary: n.failureSummary,
    })),
  }));
}
"""


async def axe_violations(
    page: Page,
    *,
    impacts: Iterable[str] = ("serious", "critical"),
    exclude: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The WCAG 2.1 A/AA violations of the page's document whose impact is one of `impacts`,
    each as {id, impact, help, nodes: [{target, failureSummary}] (the first five)}; `exclude`
    holds CSS selectors of parts not to check. Injects axe-core unless the page already has it."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        if not AXE_JS.is_file():
            raise RuntimeError(
                f"axe-core is not installed ({AXE_JS} is missing): run `make test` "
                "(or `npm ci` in the repository root)"
            )
        await page.add_script_tag(path=AXE_JS)
    violations: list[dict[str, Any]] = await page.evaluate(
        RUN_AXE_JS, {"tags": WCAG_TAGS, "exclude": exclude or [], "maxNodes": MAX_NODES}
    )
    wanted = set(impacts)
    return [v for v in violations if v["impact"] in wanted]


def describe(violations: list[dict[str, Any]]) -> str:
    """A readable multi-line account of axe violations, for assertion messages."""
    if not violations:
        return "no accessibility violations"
    lines = [f"{len(violations)} accessibility violation(s):"]
    for v in violations:
        lines.append(f"- {v['id']} [{v['impact']}]: {v['help']}")
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(f"    at {target}")
            for summary_line in (node.get("failureSummary") or "").splitlines():
                if summary_line.strip():
                    lines.append(f"      {summary_line.strip()}")
    return "\n".join(lines)

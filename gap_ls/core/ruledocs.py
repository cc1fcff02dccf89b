"""Rule documentation: a rule's class docstring split into its sections.

The docstring is the single source for `gap-ls rule CODE`, hover text, SARIF
help and the generated pages in docs/rules/. Sections are Markdown `##`
headings; REQUIRED_SECTIONS must all be present (a test checks every rule).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gap_ls.core.rule import Rule

REQUIRED_SECTIONS = (
    "What it does",
    "Why is this bad?",
    "What gap-ls cannot verify",
    "Example",
    "Use instead",
)

_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)

# Where the generated rule pages are published (docs/rules/ of the repository).
DOCS_URI = "https://github.com/gap-ls/gap-ls/blob/main/docs/rules/{code}.md"


def doc_url(code: str) -> str:
    return DOCS_URI.format(code=code)


@dataclass(frozen=True)
class RuleDoc:
    code: str
    name: str
    family: str
    severity: str
    title: str
    sections: dict[str, str]

    def section(self, heading: str) -> str:
        return self.sections.get(heading, "")

    @property
    def summary(self) -> str:
        """The first sentence of "What it does"."""
        text = " ".join(self.section("What it does").split())
        match = re.match(r"(.+?[.!?])(\s|$)", text)
        return match.group(1) if match else text

    def markdown(self) -> str:
        lines = [f"# {self.code} {self.name}", "", f"*{self.title}* — family `{self.family}`, default severity `{self.severity}`.", ""]
        for heading, body in self.sections.items():
            lines += [f"## {heading}", "", body, ""]
        return "\n".join(lines).rstrip() + "\n"

    def text(self) -> str:
        """Plain text for a terminal: headings underlined, code blocks indented."""
        out = [f"{self.code} {self.name} ({self.family}, {self.severity})", self.title, ""]
        for heading, body in self.sections.items():
            out += [heading, "-" * len(heading)]
            in_code = False
            for line in body.splitlines():
                if line.startswith("```"):
                    in_code = not in_code
                    continue
                out.append(("    " + line) if in_code else line)
            out.append("")
        return "\n".join(out).rstrip() + "\n"


def parse_sections(docstring: str) -> dict[str, str]:
    text = inspect.cleandoc(docstring)
    matches = list(_HEADING.finditer(text))
    sections: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        sections[match.group(1)] = text[match.end() : end].strip()
    return sections


def rule_doc(rule: type[Rule]) -> RuleDoc:
    return RuleDoc(
        code=rule.code,
        name=rule.name,
        family=rule.family.value,
        severity=rule.severity.value,
        title=rule.title,
        sections=parse_sections(rule.__doc__ or ""),
    )


def missing_sections(doc: RuleDoc) -> list[str]:
    return [heading for heading in REQUIRED_SECTIONS if not doc.section(heading)]

"""Prompt templates as versioned files.

Each template is a Markdown file in templates/ with a small header:

    ---
    name: translator
    version: 3
    variables: gpu, problem_source, functional_source
    ---
    ## system
    ...
    ## user
    ... ${problem_source} ...

`$name` / `${name}` placeholders (string.Template) leave CUDA's braces alone.
Every declared variable must be given and nothing else; the version and a hash
of the text are recorded with each candidate the prompt produced.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path

from kernelwright.tools.errors import KernelwrightError

TEMPLATE_DIR = Path(__file__).parent / "templates"
_HEADER_RE = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_SECTION_RE = re.compile(r"^## (system|user)\s*$", re.M)


class PromptError(KernelwrightError):
    kind = "prompt"


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    name: str
    version: int
    sha256: str
    system: str
    user: str

    @property
    def tag(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: int
    variables: tuple[str, ...]
    system: str
    user: str
    sha256: str
    path: Path

    def render(self, **values: object) -> RenderedPrompt:
        missing = [v for v in self.variables if v not in values]
        extra = [k for k in values if k not in self.variables]
        if missing or extra:
            raise PromptError(f"prompt {self.name}@v{self.version}: missing {missing}, unexpected {extra}",
                              where=str(self.path))
        text = {k: str(v) for k, v in values.items()}
        try:
            system = string.Template(self.system).substitute(text)
            user = string.Template(self.user).substitute(text)
        except (KeyError, ValueError) as exc:
            raise PromptError(f"prompt {self.name}: bad placeholder {exc}", where=str(self.path)) from None
        return RenderedPrompt(self.name, self.version, self.sha256, system, user)


def parse_template(text: str, path: Path) -> PromptTemplate:
    header = _HEADER_RE.match(text)
    if header is None:
        raise PromptError("template has no '---' header with name, version and variables", where=str(path))
    fields = dict(line.split(":", 1) for line in header.group(1).splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    try:
        name, version = fields["name"], int(fields["version"])
    except (KeyError, ValueError):
        raise PromptError("header needs 'name' and an integer 'version'", where=str(path)) from None
    variables = tuple(v.strip() for v in fields.get("variables", "").split(",") if v.strip())
    body = text[header.end():]
    parts = _SECTION_RE.split(body)
    sections = {parts[i]: parts[i + 1].strip() + "\n" for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise PromptError("template has no '## user' section", where=str(path))
    used = {m.group(1) or m.group(2) for m in re.finditer(r"\$(?:(\w+)|\{(\w+)\})", body)}
    if used - set(variables) or set(variables) - used:
        raise PromptError(f"placeholders {sorted(used)} do not match declared variables {sorted(variables)}",
                          where=str(path))
    return PromptTemplate(name, version, variables, sections.get("system", ""), sections["user"],
                          hashlib.sha256(text.encode()).hexdigest(), path)


class PromptLibrary:
    """All templates of a directory (default: the packaged ones), by name."""

    def __init__(self, directory: Path = TEMPLATE_DIR):
        self.directory = Path(directory)
        self._templates: dict[str, PromptTemplate] = {}
        for path in sorted(self.directory.glob("*.md")):
            template = parse_template(path.read_text(), path)
            if template.name in self._templates:
                raise PromptError(f"two templates named {template.name!r}", where=str(path))
            self._templates[template.name] = template

    def names(self) -> list[str]:
        return sorted(self._templates)

    def get(self, name: str) -> PromptTemplate:
        try:
            return self._templates[name]
        except KeyError:
            raise PromptError(f"no prompt template named {name!r} (have {self.names()})",
                              where=str(self.directory)) from None

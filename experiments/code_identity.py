"""Code is part of a run's identity: the digest of the source of the run's optimizer class and
model builder (and of the project modules they import) goes into ``config_id``, so editing a
method re-runs exactly the runs that use it (benchopt keys its cache on the solver file the
same way).

The digest is taken over the file's Python tokens without comments and blank lines: editing a
comment or re-indenting continuation lines keeps the run ids, any code or docstring change
re-runs. Classes from outside the repository (torch.optim.SGD, Adam) have no digest: their
code is pinned by the torch version, recorded in each run's provenance.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import io
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("optimizers", "models")
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING}


@functools.lru_cache(maxsize=None)
def _file_digest(path: Path, mtime_ns: int) -> str:
    src = path.read_bytes()
    toks = [f"{t.type}:{t.string}" for t in tokenize.tokenize(io.BytesIO(src).readline) if t.type not in _SKIP]
    return hashlib.sha256("\n".join(toks).encode()).hexdigest()


def _module_file(name: str) -> Path | None:
    for cand in (REPO / Path(*name.split("."))).with_suffix(".py"), REPO / Path(*name.split(".")) / "__init__.py":
        if cand.exists():
            return cand
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Project modules (of PACKAGES) that ``module`` imports, statically."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        out.update(n for n in names if n.split(".")[0] in PACKAGES and _module_file(n))
    return out


def _tree_state() -> tuple:
    return tuple((str(f), f.stat().st_mtime_ns) for pkg in PACKAGES for f in sorted((REPO / pkg).rglob("*.py")))


def module_digest(module: str) -> str:
    """Digest of ``module`` and every project module it imports, transitively (the package
    ``__init__`` registries are left out: adding a method must not re-run the others)."""
    return _module_digest(module, _tree_state())


@functools.lru_cache(maxsize=256)
def _module_digest(module: str, state: tuple) -> str:
    seen, todo, parts = set(), [module], []
    while todo:
        m = todo.pop()
        path = _module_file(m)
        if m in seen or path is None or (path.name == "__init__.py" and m != module):
            continue
        seen.add(m)
        parts.append(f"{path.relative_to(REPO)}:{_file_digest(path, path.stat().st_mtime_ns)}")
        todo.extend(_imports(path, m))
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def code_ids(cfg: dict) -> dict:
    """{"optimizer": digest or None, "model": digest or None} for a resolved config."""
    import models
    import optimizers
    out = {}
    cls = optimizers.REGISTRY.get(cfg["optimizer"].get("name"))
    mod = getattr(cls, "__module__", "") or ""
    out["optimizer"] = module_digest(mod) if mod.split(".")[0] == "optimizers" else None
    spec = models.BUILDERS.get(cfg["model"].get("name"))
    out["model"] = module_digest(spec.split(":")[0]) if spec else None
    return out

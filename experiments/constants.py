"""Optimizer settings written in terms of the problem's constants, e.g. ``lr: 1/L_max``.

Only arithmetic on numbers and the names in ``NAMES`` is allowed (no function calls, no
attribute access), so a config can never run code.
"""
from __future__ import annotations

import ast
import math
import operator

NAMES = ("L", "L_max", "mu", "rho", "rho_b", "n", "d", "kappa", "f_star")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow, ast.USub: operator.neg,
        ast.UAdd: operator.pos}


class ExpressionError(ValueError):
    pass


def check_expression(text: str) -> None:
    """Raise ExpressionError unless ``text`` is arithmetic over numbers and NAMES."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"'{text}' is not an arithmetic expression") from e
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in NAMES:
            raise ExpressionError(f"'{text}' uses unknown name '{node.id}'; valid names: {', '.join(NAMES)}")
        if not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name,
                                 ast.Load, *_OPS)):
            raise ExpressionError(f"'{text}' may only use numbers, + - * / ** and {', '.join(NAMES)}")


def evaluate(text: str, info: dict) -> float:
    check_expression(text)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if info.get(node.id) is None:
                raise ExpressionError(f"'{text}' needs {node.id}, which this dataset does not report")
            return float(info[node.id])
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        return _OPS[type(node.op)](ev(node.operand))

    try:
        value = float(ev(ast.parse(text, mode="eval")))
    except (ZeroDivisionError, OverflowError) as e:
        raise ExpressionError(f"'{text}' cannot be evaluated with this dataset's constants ({e})") from None
    if not math.isfinite(value):
        raise ExpressionError(f"'{text}' evaluates to {value}; it must be a finite number")
    return value


def resolve(opt_cfg: dict, info: dict) -> dict:
    """Replace string values that are expressions (everything but name/schedule) by floats."""
    out = dict(opt_cfg)
    for k, v in opt_cfg.items():
        if k not in ("name", "schedule", "full_batch") and isinstance(v, str) and _looks_numeric(v):
            out[k] = evaluate(v, info)
    return out


def _looks_numeric(text: str) -> bool:
    try:
        check_expression(text)
        return True
    except ExpressionError:
        return False

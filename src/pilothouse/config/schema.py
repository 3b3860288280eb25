"""Walking the config model's type annotations: which model or field a key path names.

The loader uses it to suggest keys ("did you mean") and to give an environment override the
type of the field it sets.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel


def model_in(annotation: Any) -> Any:
    """The BaseModel (or list of models, for unions) inside Optional/list/dict/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return model_in(typing.get_args(annotation)[0])
    if origin in (list, dict, tuple):
        return model_in(typing.get_args(annotation)[-1])
    if origin in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := model_in(a)) is not None]
        flat = [x for m in models for x in (m if isinstance(m, list) else [m])]
        return flat[0] if len(flat) == 1 else (flat or None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def unwrap(annotation: Any) -> Any:
    """`X | None` -> X (keeping Annotated metadata)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def annotation_at(root: type[BaseModel], parts: list[str]) -> Any:
    """The type annotation of the field at `parts` (None when there is no such field)."""
    annotation: Any = root
    for part in parts:
        container = unwrap(annotation)
        if typing.get_origin(container) is typing.Annotated:
            container = typing.get_args(container)[0]
        if typing.get_origin(container) is dict:  # [deploy.environments.NAME], [deploy.env]
            annotation = typing.get_args(container)[-1]
            continue
        model = model_in(annotation)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if field.metadata:  # pydantic moves a top-level Annotated's metadata here
            annotation = typing.Annotated[(annotation, *field.metadata)]
    return annotation

"""A Jinja environment whose templates are translated when they compile, not every time they render.

jinja2's i18n extension (newstyle gettext) turns each ``{{ _("Total") }}`` and ``{% trans %}`` into a
call at render time: a catalog look-up and two context calls, about 39 per e-mail, a third of the
Jinja render time. The renderer keeps one environment per catalog, so the catalog is known when a
template compiles: a call whose message is a constant string becomes the translated constant.
What the call would have done at render time is kept exactly: the result is Markup where the template
autoescapes, and it is always ``%``-formatted with the call's keyword arguments (escaped by Markup),
so ``%%`` still reads ``%``. Calls with a computed message, ``ngettext`` (its form depends on a
number known only at render time), and calls inside a ``~`` concatenation stay calls: Jinja folds a
constant ``~`` with ``str.join`` and would lose the Markup, escaping the translation
(``{{ "a" ~ ("<b>"|safe) }}`` renders ``a&lt;b&gt;`` in stock Jinja too).
"""

from __future__ import annotations

import gettext
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.visitor import NodeTransformer

_GETTEXT_NAMES = frozenset({"_", "gettext"})


class TranslatingEnvironment(jinja2.Environment):
    """An :class:`jinja2.Environment` with the i18n extension, bound to one catalog for good."""

    def __init__(self, translations: gettext.NullTranslations, **options: Any) -> None:
        extensions = [*options.pop("extensions", ()), "jinja2.ext.i18n"]
        super().__init__(extensions=extensions, **options)
        self.translations = translations
        self.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        tree = _ConstantMessages(self.translations.gettext).visit(tree)
        tree.set_environment(self)  # the new nodes need it to decide autoescaping
        return tree


class _ConstantMessages(NodeTransformer):
    """``gettext("msg", k=v)`` -> ``MarkSafeIfAutoescape("translated") % {"k": v}``."""

    def __init__(self, translate: Any) -> None:
        self.translate = translate

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        return node  # see the module's docstring: left as calls, never folded

    def visit_Call(self, node: nodes.Call) -> nodes.Node:  # noqa: N802 (the visitor's naming)
        self.generic_visit(node)  # keyword values may hold calls of their own
        callee, args = node.node, node.args
        if not (isinstance(callee, nodes.Name) and callee.name in _GETTEXT_NAMES and len(args) == 1
                and isinstance(args[0], nodes.Const) and isinstance(args[0].value, str)
                and node.dyn_args is None and node.dyn_kwargs is None):
            return node
        lineno = node.lineno
        message = nodes.MarkSafeIfAutoescape(nodes.Const(self.translate(args[0].value), lineno=lineno),
                                             lineno=lineno)
        variables = nodes.Dict([nodes.Pair(nodes.Const(k.key, lineno=lineno), k.value, lineno=lineno)
                                for k in node.kwargs], lineno=lineno)
        return nodes.Mod(message, variables, lineno=lineno)

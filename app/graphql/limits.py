"""How big one GraphQL document may be: depth, aliases and cost, checked at validation (so a
rejected document costs a parse and one walk, and the verdict is cached with the document).

Cost: each field costs 1, or more where it reads guild data (``FIELD_COSTS``); a field under a
list counts ``LIST_FACTOR`` times. Fragments are measured once each, so a document cannot make
the walk itself expensive, and fragment cycles are left to GraphQL's own rule to report.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
)
from graphql.validation.validate import ValidationAbortedError


def parse_document(query: str, max_tokens: int) -> DocumentNode | GraphQLError:
    """``query`` parsed, or why it cannot be; remembered for documents up to
    CACHED_QUERY_CHARS (errors too: a bad query sent again costs nothing)."""
    if len(query) > CACHED_QUERY_CHARS:
        return _parse(query, max_tokens)
    return _parse_cached(query, max_tokens)


def _parse(query: str, max_tokens: int) -> DocumentNode | GraphQLError:
    try:
        return parse(query, max_tokens=max_tokens)
    except GraphQLError as error:
        return error


_parse_cached = functools.lru_cache(maxsize=1024)(_parse)

LIST_FACTOR = 10
FIELD_COSTS = {
    ("Query", "guildRoles"): 10,
    ("Query", "pingableRoles"): 10,
    ("Query", "validateRoles"): 10,
    ("Query", "botGuilds"): 50,
    ("Subscription", "guildRolesChanged"): 10,
}
TOO_COMPLEX = "QUERY_TOO_COMPLEX"
# How often one response name may be selected in one selection set (fragments included).
# Merging repeated fields is legal GraphQL, and checking that they can be merged compares every
# pair of them: hundreds of repeats cost the server seconds.
MAX_REPEATS = 20  # room for many fragments that each select `id`; 20² comparisons are nothing
# Parsed and validated documents are cached by their text up to this length; a longer one is
# parsed afresh each time, or a caller could fill the caches with megabytes per entry.
CACHED_QUERY_CHARS = 4096


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    max_cost: int = 5000
    introspection: bool = True


@dataclass(frozen=True, slots=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0
    repeats: int = 0  # most selections of one response name in one selection set

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.cost + other.cost,
            max(self.repeats, other.repeats),
        )


class _Walk:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self._schema = schema
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._measured: dict[str, Measure] = {}
        self._measuring: set[str] = set()
        self._named: dict[str, Counter[str]] = {}

    def operation(self, operation: OperationDefinitionNode) -> Measure:
        root = self._schema.get_root_type(operation.operation)
        return self.selections(operation.selection_set, root)

    def selections(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None) -> Measure:
        names = self._names(selection_set, set())
        total = Measure(repeats=max(names.values(), default=0))
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total = total + self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self._schema.get_type(condition.name.value) if condition else parent
                total = total + self.selections(selection.selection_set, inner)
            elif isinstance(selection, FragmentSpreadNode):
                total = total + self._fragment(selection.name.value)
        return total

    def _names(self, selection_set: SelectionSetNode | None, visiting: set[str]) -> Counter[str]:
        """Response names selected in ``selection_set``, inline fragments and fragments included."""
        names: Counter[str] = Counter()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                names[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, InlineFragmentNode):
                names.update(self._names(selection.selection_set, visiting))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self._fragments.get(name)
                if fragment is None or name in visiting:
                    continue  # unknown or cyclic: GraphQL's own rules report it
                if name not in self._named:
                    self._named[name] = self._names(fragment.selection_set, visiting | {name})
                names.update(self._named[name])
        return names

    def _field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        name = node.name.value
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
        child_type = get_named_type(definition.type) if definition is not None else None
        child = self.selections(node.selection_set, child_type)
        many = definition is not None and is_list_type(get_nullable_type(definition.type))
        own = FIELD_COSTS.get((parent.name if parent else "", name), 1)
        return Measure(
            depth=1 + child.depth,
            aliases=child.aliases + (1 if node.alias else 0),
            cost=own + (LIST_FACTOR if many else 1) * child.cost,
            repeats=child.repeats,
        )

    def _fragment(self, name: str) -> Measure:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:
            return Measure()  # unknown or cyclic: GraphQL's own rules report it
        self._measuring.add(name)
        measured = self.selections(
            fragment.selection_set, self._schema.get_type(fragment.type_condition.name.value)
        )
        self._measuring.discard(name)
        self._measured[name] = measured
        return measured


def limits_rule(limits: QueryLimits) -> type[ASTValidationRule]:
    class LimitsRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            walk = _Walk(context.schema, context.document)
            self.problems: list[GraphQLError] = []
            for definition in context.document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    self.problems += self._check(definition, walk.operation(definition))

        def enter_document(self, *_: object) -> None:
            """A document over the limits is refused before the other rules walk it: what they
            would find is not worth their time (some of them take time quadratic in its size)."""
            if self.problems:
                *others, last = self.problems
                for problem in others:
                    self.report_error(problem)
                raise ValidationAbortedError(last.message, last.nodes, extensions=last.extensions)

        @staticmethod
        def _check(operation: OperationDefinitionNode, measure: Measure) -> list[GraphQLError]:
            name = f"Operation {operation.name.value!r}" if operation.name else "The operation"
            problems = []
            if measure.depth > limits.max_depth:
                problems.append(
                    f"{name} nests {measure.depth} levels deep; at most {limits.max_depth} are allowed."
                )
            if measure.aliases > limits.max_aliases:
                problems.append(
                    f"{name} uses {measure.aliases} aliases; at most {limits.max_aliases} are allowed."
                )
            if measure.cost > limits.max_cost:
                problems.append(
                    f"{name} would cost {measure.cost} points; at most {limits.max_cost} are allowed "
                    "(ask for fewer guilds or fields per request)."
                )
            if measure.repeats > MAX_REPEATS:
                problems.append(
                    f"{name} selects one field {measure.repeats} times in one place; at most"
                    f" {MAX_REPEATS} are allowed (use aliases for different arguments)."
                )
            return [GraphQLError(p, operation, extensions={"code": TOO_COMPLEX}) for p in problems]

    return LimitsRule


def validation_rules(limits: QueryLimits) -> list[type[ASTValidationRule]]:
    """Built once per schema: Strawberry caches validation by rule classes, so they must not be
    rebuilt for each request."""
    rules: list[type[ASTValidationRule]] = [limits_rule(limits)]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules

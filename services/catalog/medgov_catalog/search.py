"""Full-text and faceted search over the datasets of all regions.

Values of one facet are alternatives (modality CT or MR); different facets
must all match (CT and region gwangju). Facet counts are computed over the
datasets that match the whole query, so they tell how many results each
further filter would leave.
"""

from dataclasses import dataclass, field
from typing import Any

import asyncpg

# A condition facet can have thousands of codes; the most frequent are enough to refine a search.
MAX_FACET_VALUES = 50

_FILTERS = (
    # (query field, SQL condition with the parameter placeholder)
    ("modality", "modalities && {}::text[]"),
    ("body_part", "body_parts && {}::text[]"),
    ("region", "region = ANY({}::text[])"),
    ("institution", "institution_id = ANY({}::text[])"),
    ("condition", "condition_codes && {}::text[]"),
    ("duo", "duo_codes && {}::text[]"),
    ("legal_basis", "legal_basis = ANY({}::text[])"),
)

_FACETS = {
    "modality": "SELECT 'modality', value, count(*) FROM hits, unnest(modalities) AS value GROUP BY value",
    "body_part": "SELECT 'body_part', value, count(*) FROM hits, unnest(body_parts) AS value GROUP BY value",
    "region": "SELECT 'region', region, count(*) FROM hits GROUP BY region",
    "institution": "SELECT 'institution', institution_id, count(*) FROM hits GROUP BY institution_id",
    "condition": "SELECT 'condition', value, count(*) FROM hits, unnest(condition_codes) AS value GROUP BY value",
    "duo": "SELECT 'duo', value, count(*) FROM hits, unnest(duo_codes) AS value GROUP BY value",
    "legal_basis": "SELECT 'legal_basis', legal_basis, count(*) FROM hits GROUP BY legal_basis",
}

_TEXT_MATCH = "document @@ (websearch_to_tsquery('english', {0}) || websearch_to_tsquery('simple', {0}))"
_RANK = "ts_rank(document, websearch_to_tsquery('english', {0}) || websearch_to_tsquery('simple', {0}))"


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: list[dict[str, Any]]
    facets: dict[str, list[dict[str, Any]]]


def _where(query: SearchQuery) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    parameters: list[Any] = []
    if query.text and query.text.strip():
        parameters.append(query.text.strip())
        conditions.append(_TEXT_MATCH.format(f"${len(parameters)}"))
    for name, template in _FILTERS:
        values = query.filters.get(name)
        if values:
            parameters.append(list(values))
            conditions.append(template.format(f"${len(parameters)}"))
    return (" AND ".join(conditions) or "TRUE"), parameters


async def search(connection: asyncpg.Connection, query: SearchQuery) -> SearchResult:
    where, parameters = _where(query)
    rank = _RANK.format("$1") if query.text and query.text.strip() else "0"
    hits_sql = (
        f"SELECT dataset_id, version, institution_id, region, origin, title, description, keywords, legal_basis, "
        f"duo_codes, modalities, body_parts, condition_codes, completeness_score, record_count, subject_count, "
        f"published_at, {rank} AS rank FROM search_entries WHERE {where} "
        f"ORDER BY rank DESC, completeness_score DESC, dataset_id "
        f"LIMIT {int(query.limit)} OFFSET {int(query.offset)}"
    )
    rows = await connection.fetch(hits_sql, *parameters)
    total = await connection.fetchval(f"SELECT count(*) FROM search_entries WHERE {where}", *parameters)
    facet_rows = await connection.fetch(
        f"WITH hits AS (SELECT * FROM search_entries WHERE {where}) " + " UNION ALL ".join(_FACETS.values()),
        *parameters,
    )
    return SearchResult(total=total, hits=[_hit(row) for row in rows], facets=_facets(facet_rows))


def _hit(row: asyncpg.Record) -> dict[str, Any]:
    hit = dict(row)
    hit.pop("rank")
    hit["published_at"] = row["published_at"].isoformat()
    return hit


def _facets(rows: list[asyncpg.Record]) -> dict[str, list[dict[str, Any]]]:
    facets: dict[str, list[dict[str, Any]]] = {name: [] for name in _FACETS}
    for name, value, count in rows:
        facets[name].append({"value": value, "count": count})
    for name, values in facets.items():
        values.sort(key=lambda item: (-item["count"], item["value"]))
        facets[name] = values[:MAX_FACET_VALUES]
    return facets

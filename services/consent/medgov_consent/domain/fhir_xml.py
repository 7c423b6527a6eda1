"""FHIR XML to the FHIR JSON structure, guided by the element definitions of fhir.resources' R4B models.

fhir.resources 8 parses XML only through lxml, which this service does not
depend on, so this module maps the XML with the standard library and leaves
validation to the JSON path. It follows the FHIR XML format:

- elements live in the namespace http://hl7.org/fhir;
- a primitive's value is its `value` attribute, and `id` and `Extension.url`
  are attributes;
- an element the model allows to repeat becomes a JSON array;
- a primitive's own id and extensions go to `_<name>`;
- a narrative `div` stays XHTML text;
- a resource inside another (`contained`) is wrapped in an element named by
  its type.

Comments and processing instructions are dropped. DTDs are rejected, so no
entity can expand: the document must be UTF-8 without NUL bytes, in which a
DTD or entity declaration shows as ASCII bytes.
"""

import xml.etree.ElementTree as ElementTree
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.consent import Consent
from fhir_core.utils import determine_version_prefix, get_fhir_type_name, is_list_type, is_primitive_type
from pydantic.fields import FieldInfo

FHIR_NAMESPACE = "http://hl7.org/fhir"
XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"

# A consent document is a few kilobytes; a bound keeps a hostile upload from
# costing memory before any check runs.
MAX_DOCUMENT_BYTES = 1_000_000
# The conversion below recurses once per element. The JSON reader rejects a
# resource deeper than 64 levels; this bound leaves room for a narrative's XHTML.
MAX_ELEMENT_DEPTH = 100

# fhir_core derives the key of its type table from the module path; asking it
# keeps this module in step with the installed release.
_TYPE_PREFIX = determine_version_prefix(Consent.__module__)

_INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
_ATTRIBUTE_FIELDS = ("id", "url")


class FhirXmlError(ValueError):
    """Raised for XML that is not a FHIR resource; the message names the element path."""


def parse_fhir_xml(document: bytes | str) -> dict[str, Any]:
    """Return the FHIR JSON structure of one resource given in FHIR XML."""
    raw = document.encode("utf-8") if isinstance(document, str) else document
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise FhirXmlError(f"document has {len(raw)} bytes; at most {MAX_DOCUMENT_BYTES} are accepted")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FhirXmlError(f"document is not UTF-8, the encoding FHIR requires: {error}") from None
    if b"\x00" in raw:
        # UTF-16 or UTF-32 text passes the UTF-8 check when it is ASCII, and expat would then
        # read it in that encoding, where the DTD check below cannot see a declaration.
        raise FhirXmlError(
            "document contains NUL bytes, which XML does not allow; it looks like UTF-16 or UTF-32, and FHIR XML must be UTF-8"
        )
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise FhirXmlError("document declares a DTD or entity; FHIR XML needs neither and they are rejected")
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as error:
        raise FhirXmlError(f"document is not well-formed XML: {error}") from error

    deepest = _deepest(root)
    if deepest > MAX_ELEMENT_DEPTH:
        raise FhirXmlError(f"document nests elements {deepest} levels deep; at most {MAX_ELEMENT_DEPTH} are read")
    namespace, resource_type = _split_tag(root.tag)
    if namespace != FHIR_NAMESPACE:
        raise FhirXmlError(f"root element {root.tag!r} is not in the FHIR namespace {FHIR_NAMESPACE}")
    return _resource_to_json(root, resource_type, resource_type)


def _deepest(root: ElementTree.Element) -> int:
    """Return the nesting depth of the element tree, counted without recursion."""
    deepest = 0
    pending = [(root, 1)]
    while pending:
        element, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in element)
    return deepest


def _resource_to_json(element: ElementTree.Element, resource_type: str, path: str) -> dict[str, Any]:
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        raise FhirXmlError(f"{path}: {resource_type!r} is not a FHIR R4 resource type") from None
    return {"resourceType": resource_type, **_element_to_json(element, model, path)}


def _element_to_json(element: ElementTree.Element, model: type, path: str) -> dict[str, Any]:
    fields = _fields_by_name(model)
    result: dict[str, Any] = _attributes(element, fields, path)
    primitive_extensions: dict[str, list[Any]] = {}

    for child in element:
        namespace, name = _split_tag(child.tag)
        child_path = f"{path}.{name}"
        field = fields.get(name)
        if field is None or namespace not in (FHIR_NAMESPACE, XHTML_NAMESPACE):
            raise FhirXmlError(f"{child_path}: element is not part of {model.__name__}")

        value, extension = _child_to_json(child, field, child_path)
        if is_list_type(field):
            result.setdefault(name, []).append(value)
            primitive_extensions.setdefault(name, []).append(extension)
            continue
        if name in result:
            raise FhirXmlError(f"{child_path}: element occurs more than once but allows one occurrence")
        result[name] = value
        if extension is not None:
            result[f"_{name}"] = extension

    for name, extensions in primitive_extensions.items():
        if any(item is not None for item in extensions):
            result[f"_{name}"] = extensions
    return result


def _fields_by_name(model: type) -> dict[str, FieldInfo]:
    fields = model.model_fields  # type: ignore[attr-defined]
    return {
        (info.alias or name): info
        for name, info in fields.items()
        if not (info.alias or name).startswith("_") and name != "fhir_comments"
    }


def _attributes(element: ElementTree.Element, fields: dict[str, FieldInfo], path: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in element.attrib.items():
        if name not in _ATTRIBUTE_FIELDS or name not in fields:
            raise FhirXmlError(f"{path}: attribute {name!r} is not allowed here")
        attributes[name] = value
    return attributes


def _child_to_json(child: ElementTree.Element, field: FieldInfo, path: str) -> tuple[Any, dict[str, Any] | None]:
    """Return (JSON value, primitive extension object or None) of one child element."""
    type_name = get_fhir_type_name(field, prefix=_TYPE_PREFIX)
    if type_name == "xhtml":
        try:
            return _xhtml_text(child), None
        except ValueError as error:
            # ElementTree cannot write an element without a namespace inside the XHTML default namespace.
            raise FhirXmlError(f"{path}: the narrative cannot be written as XHTML: {error}") from None
    if is_primitive_type(field):
        return _primitive_to_json(child, type_name, path)
    if type_name == "Resource":
        return _wrapped_resource(child, path), None
    return _element_to_json(child, get_fhir_model_class(type_name), path), None


def _primitive_to_json(child: ElementTree.Element, type_name: str, path: str) -> tuple[Any, dict[str, Any] | None]:
    unexpected = set(child.attrib) - {"value", "id"}
    if unexpected:
        raise FhirXmlError(f"{path}: attributes {', '.join(sorted(unexpected))} are not allowed on a primitive")
    raw = child.get("value")
    extension = _primitive_extension(child, path)
    if raw is None and extension is None:
        raise FhirXmlError(f"{path}: a primitive element needs a value attribute or extensions")
    value = _typed_value(raw, type_name, path) if raw is not None else None
    return value, extension


def _primitive_extension(child: ElementTree.Element, path: str) -> dict[str, Any] | None:
    extension_model = get_fhir_model_class("Extension")
    extensions = []
    for item in child:
        namespace, name = _split_tag(item.tag)
        if namespace != FHIR_NAMESPACE or name != "extension":
            raise FhirXmlError(f"{path}.{name}: a primitive element may hold only extensions")
        extensions.append(_element_to_json(item, extension_model, f"{path}.extension"))

    result: dict[str, Any] = {}
    if "id" in child.attrib:
        result["id"] = child.attrib["id"]
    if extensions:
        result["extension"] = extensions
    return result or None


def _typed_value(raw: str, type_name: str, path: str) -> Any:
    if type_name == "boolean":
        if raw not in ("true", "false"):
            raise FhirXmlError(f"{path}: boolean value must be true or false, got {raw!r}")
        return raw == "true"
    if type_name in _INTEGER_TYPES:
        try:
            return int(raw)
        except ValueError:
            raise FhirXmlError(f"{path}: {raw!r} is not an integer") from None
    if type_name == "decimal":
        try:
            return Decimal(raw)
        except InvalidOperation:
            raise FhirXmlError(f"{path}: {raw!r} is not a decimal") from None
    return raw


def _wrapped_resource(child: ElementTree.Element, path: str) -> dict[str, Any]:
    inner = list(child)
    if len(inner) != 1:
        raise FhirXmlError(f"{path}: expected exactly one resource element inside, found {len(inner)}")
    namespace, resource_type = _split_tag(inner[0].tag)
    if namespace != FHIR_NAMESPACE:
        raise FhirXmlError(f"{path}: inner element {inner[0].tag!r} is not in the FHIR namespace")
    return _resource_to_json(inner[0], resource_type, f"{path}.{resource_type}")


def _xhtml_text(child: ElementTree.Element) -> str:
    # tostring() serializes the text after the element too, which belongs to the parent.
    tail, child.tail = child.tail, None
    try:
        return ElementTree.tostring(child, encoding="unicode", default_namespace=XHTML_NAMESPACE)
    finally:
        child.tail = tail


def _split_tag(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag

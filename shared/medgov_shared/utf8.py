"""UTF-8 text from bytes, and descriptions of bytes meant as UTF-8 that are not, in words a sender can act on."""

import codecs

# The little-endian UTF-32 mark starts with the little-endian UTF-16 one.
_OTHER_UNICODE_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


def utf8_problem(data: bytes) -> str | None:
    """Return why `data` is not UTF-8 text, or None when it is.

    Text that starts with a UTF-16 or UTF-32 byte-order mark (Windows
    Notepad's "Unicode" is UTF-16) is named as such. Other bytes are
    named by the first one that is invalid and its offset.
    """
    if data.startswith(_OTHER_UNICODE_MARKS):
        return "UTF-16 or UTF-32 text (it starts with a byte-order mark)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 text (invalid byte 0x{data[error.start]:02x} at offset {error.start})"
    return None


def decode_utf8(data: bytes) -> str:
    """Decode the bytes of a file as UTF-8 text, dropping a UTF-8 byte-order mark, which Windows editors write.

    Bytes that are not UTF-8 raise ValueError with utf8_problem's description
    and the advice to save the file as UTF-8.
    """
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{utf8_problem(data)}; save the file as UTF-8") from None

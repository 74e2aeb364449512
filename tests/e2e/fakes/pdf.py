"""Minimal PDF files for the tests: one page per string, in Helvetica
(Latin-1 text, a line per "\n"), with a valid cross-reference table, as
pdftotext reads them.  An empty string makes a page without text (a
scanned page, say)."""


def make_pdf(pages):
    objs = []

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    page_ids = []
    for text in pages:
        lines = [ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")
                 for ln in text.split("\n")]
        stream = b"BT /F1 12 Tf 14 TL 72 720 Td (" + b") Tj T* (".join(lines) + b") Tj ET"
        contents = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append((add(None), contents))
    parent = add(None)
    for page, contents in page_ids:
        objs[page - 1] = (b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                          b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (parent, contents, font))
    objs[parent - 1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p, _ in page_ids) +
                        b"] /Count %d >>" % len(page_ids))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % parent)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref)
    return bytes(out)

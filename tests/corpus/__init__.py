"""Real files in every format counties send, built at test time from python-docx forms by the
tools that make them in the wild: LibreOffice (.doc, .rtf, .odt, PDF), qpdf (encrypted PDF),
pdftoppm (scans), 7-Zip (.7z), zipfile written the way Windows archivers write GBK names.
RAR and TNEF have no free writer, so their (simple, stored) containers are written here by hand.
"""

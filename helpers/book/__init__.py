"""The book machinery: chapter sources to executed notebooks, two-language pages, the sites and the PDFs."""

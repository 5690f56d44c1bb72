"""The book machinery: from MyST chapter sources to executed notebooks, two-language pages, the site and the PDFs.

- :mod:`~helpers.book.notebooks`: the chapters' MyST sources and their generated ``.ipynb`` pairs;
- :mod:`~helpers.book.params`: every chapter's parameter schema, checked before any compute;
- :mod:`~helpers.book.run`: the papermill runner, by parameter profile (``python -m helpers.book.run``);
- :mod:`~helpers.book.bilingual`: one executed notebook, two language pages;
- :mod:`~helpers.book.site`: the website build that ``make book`` and the tests share;
- :mod:`~helpers.book.status_page`, :mod:`~helpers.book.pdf`, :mod:`~helpers.book.assets`,
  :mod:`~helpers.book.browser`, :mod:`~helpers.book.colab_cell`;
- Sphinx extensions: :mod:`~helpers.book.sphinx_publish`, :mod:`~helpers.book.sphinx_lang`.
"""

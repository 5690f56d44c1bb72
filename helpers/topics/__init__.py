"""The chapters' own topics, a module (or two) per chapter, each tested on its own.

Which chapter uses which module: the table "Where each chapter's code is" in CONTRIBUTING.md.
"""

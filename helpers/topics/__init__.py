"""The chapters' own topics, a module (or two) per chapter, each tested on its own."""

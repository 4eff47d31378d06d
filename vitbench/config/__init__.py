"""Suites in, jobs out: the typed suite model (:mod:`.spec`) and the YAML loader that validates it (:mod:`.suite`). No torch."""

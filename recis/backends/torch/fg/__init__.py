"""RecIS's feature generator: an FG JSON config and a model config (MC) turned into feature ops,
reader columns, embedding options and shapes (see :mod:`recis.fg`)."""

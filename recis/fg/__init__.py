"""RecIS's feature generator (``recis.fg``): an FG JSON config and a model config (MC) turned
into feature ops, reader columns, embedding options and shapes.

Import its parts from ``recis.fg.mc_parser``, ``fg_parser``, ``shape_manager``,
``feature_generator`` (``FG``, ``build_fg``) and ``utils``.
"""

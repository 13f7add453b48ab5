"""Decoder models, one per module, behind one contract (:mod:`.base`) and one registry (:mod:`.registry`)."""

"""INT8 in one place: the model files (:mod:`.models`), the quantizer (:mod:`.quantizer`), the one rule that lets an
INT8 network run (:mod:`.check`), the twin beside fp32 weights and its check on this machine (:mod:`.twin`), and the
node's switch after calibrating on its own frames (:mod:`.switch`)."""

"""The run pipeline: one model fitted and tested (fit), repeated over folds or seeds (repeat),
continued after an interruption (resume), spread over DDP processes (ddp), combined into
ensembles (ensemble), and read back from its folder (saved)."""

"""The data mode of a training iteration, decided here and nowhere else.

  base    labeled triplets: every frame of a full data set, or the labeled frames of a
          two-shot split (the warm-up of --semi runs too)
  semi    --semi after --end_warm: triplets with unlabeled frames, which get pseudo labels
  phase2  from --phase2_train on: triplets over the pseudo-label bank

train.py computes the mode of each iteration with `data_mode` and passes it down: to the
data it builds (dataset.training_data) and to the step (model.trainer.STCNModel.do_pass).
"""
BASE, SEMI, PHASE2 = 'base', 'semi', 'phase2'
MODES = (BASE, SEMI, PHASE2)          # the index is part of every sample's seed


def data_mode(para, it):
    """PHASE2, SEMI or BASE: which data the iteration `it` trains on."""
    if para['phase2_train'] >= 0 and it >= para['phase2_train']:
        return PHASE2
    if para['semi'] and it > para['end_warm']:      # the step at end_warm is still warm-up
        return SEMI
    return BASE


def modes_reached(para, start_it):
    """The data modes iterations start_it .. iterations-1 use, in order."""
    points = [start_it] + [p for p in (para['end_warm'] + 1 if para['semi'] else -1,
                                       para['phase2_train']) if start_it < p < para['iterations']]
    out = []
    for it in sorted(points):
        m = data_mode(para, it)
        if m not in out:
            out.append(m)
    return out

"""scripts/experiments/two_shot_table.py end to end at its tiny preset (not its numbers)."""
import json
import os
import sys

import pytest

from util.io import read_frame


@pytest.mark.slow
def test_tiny_preset_writes_json_png_and_every_arm(tmp_path, capsys, repo_root):
    sys.path.insert(0, os.path.join(repo_root, 'scripts', 'experiments'))
    try:
        import two_shot_table as t
    finally:
        sys.path.pop(0)
    out = tmp_path / 'exp'
    assert t.main(['--preset', 'tiny', '--seeds', '1', '--out', str(out), '--quiet']) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / 'two_shot_table.json').read_text())
    assert set(result['rows']) == {'stage0', 'all', 'naive', 'phase1', 'phase2', 'bank'}
    for row in result['rows'].values():
        for m in t.MEASURES:
            assert 0.0 <= row[m]['mean'] <= 1.0 and len(row[m]['values']) == 1
    for label in ('STCN, all labels', 'naive two-shot', 'two-shot phase 1', 'two-shot phase 2',
                  'phase-1 bank vs hidden labels'):
        assert label in printed and label in result['table']
    png = read_frame(str(out / 'two_shot_table.png'))
    assert png.ndim == 3 and png.shape[0] > 100 and png.std() > 0
    # the schedule flags follow the budget: phase 1 switched to semi triplets at end_warm
    log = (out / 'logs' / 's0_train_phase1.log').read_text()
    assert 'data: semi' in log and result['schedule']['end_warm'] < result['params']['iters']
    # the data and the stage-0 weights are cached: one build each
    assert (out / 'cache' / 'stage0' / '.done.json').is_file()
    assert (out / 'cache' / 'stage0' / 's0.pth').is_file()

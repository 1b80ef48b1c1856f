# stylenas — set-up, demo, tests, training. Everything runs inside a local virtualenv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STYLENAS := $(VENV)/bin/stylenas
# A torchvision must match its torch; these two are served together.
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
SHARED ?= ../shared
SKIMAGE_DATA = $$($(PY) -c 'import skimage.data, os; print(os.path.dirname(skimage.data.__file__))')

.PHONY: install demo test lint contact-sheet train-photonas train-photonet clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## Stylise a pair of photos that ship with scikit-image (no network): writes demo/.
demo: install
	$(STYLENAS) stylize $(SKIMAGE_DATA)/chelsea.png --style $(SKIMAGE_DATA)/coffee.png \
		-o demo/chelsea_coffee.png --overwrite
	$(STYLENAS) stylize $(SKIMAGE_DATA)/astronaut.png --style $(SKIMAGE_DATA)/rocket.jpg \
		--arch photonet -o demo/astronaut_rocket.png --overwrite
	@echo "results in demo/"

## Run the test suite (pytest exit 5 = no tests collected is an error here).
test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

## README contact sheet from scikit-image's sample photos.
contact-sheet: install
	$(PY) scripts/contact_sheet.py docs/contact_sheet.jpg

## Long runs (hours on 2 CPU cores): resumable, checkpoint every 100 steps.
train-photonas: install
	$(STYLENAS) train $(SHARED)/data/train --arch photonas -o runs/photonas --resume \
		--steps $(or $(STEPS),6000) --batch 8 --size 192 --checkpoint-every 100 --val-every 250

train-photonet: install
	$(STYLENAS) train $(SHARED)/data/train --arch photonet -o runs/photonet --resume \
		--steps $(or $(STEPS),3000) --batch 8 --size 192 --checkpoint-every 100 --val-every 250

clean:
	rm -rf $(VENV) demo .pytest_cache

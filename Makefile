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

.PHONY: install demo test lint contact-sheet train-photonas train-photonet train-wct5 bench bench-speed clean

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
		--steps $(or $(STEPS),4000) --batch 8 --size 128 --lr 2e-3 --pixel-weight 50 \
		--levels relu1_1,relu2_1,relu3_1 --checkpoint-every 100 --val-every 250

train-photonet: install
	$(STYLENAS) train $(SHARED)/data/train --arch photonet -o runs/photonet --resume \
		--steps $(or $(STEPS),2500) --batch 8 --size 128 --lr 2e-3 --pixel-weight 50 \
		--levels relu1_1,relu2_1,relu3_1 --checkpoint-every 100 --val-every 250

train-wct5: install
	$(STYLENAS) train $(SHARED)/data/train --arch wct5 -o runs/wct5 --resume \
		--steps $(or $(STEPS),3000) --batch 8 --size 128 --lr 2e-3 --pixel-weight 50 \
		--levels relu1_1,relu2_1,relu3_1 --checkpoint-every 100 --val-every 250

BENCH ?= $(SHARED)/data/bench
BENCH_ARCHS ?= photonas photonet
# e.g. EVAL_FLAGS="--weights photonas=runs/photonas/last.pt --max-size 512"
EVAL_FLAGS ?=

## Quality vs the authors' PhotoNAS/PhotoNet, DPST and colour transfer (../shared/EVAL.md).
bench: install
	$(STYLENAS) eval $(BENCH)/stylenas $(foreach a,$(BENCH_ARCHS),--arch $(a)) \
		-o runs/eval/stylenas --overwrite $(EVAL_FLAGS)
	$(STYLENAS) eval $(BENCH)/dpst $(foreach a,$(BENCH_ARCHS),--arch $(a)) --masks \
		-o runs/eval/dpst --overwrite $(EVAL_FLAGS)

## Seconds per megapixel at 512², 1024², 2048² for each architecture and the baselines.
bench-speed: install
	$(STYLENAS) bench-speed --arch photonas --arch photonet --arch wct5 --sizes 512,1024,2048

clean:
	rm -rf $(VENV) demo .pytest_cache

# stylenas — set-up, demo, tests, training. Everything runs inside a local virtualenv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STYLENAS := $(VENV)/bin/stylenas
# A torchvision must match its torch; these two are served together.
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
SHARED ?= ../shared
space := $(subst ,, )
SKIMAGE_DATA = $$($(PY) -c 'import skimage.data, os; print(os.path.dirname(skimage.data.__file__))')

.PHONY: install demo test lint contact-sheet train-photonas train-photonet train-wct5 train-supernet bench bench-speed bench-video bench-hires bench-batch bench-lut lut-ceiling bench-throughput match-report sweep-lift soak search-demo search-demo-random search-capped train-recipe search-compare proxy-fidelity prune-demo clean

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

## Long runs (hours on 2 CPU cores): resumable, checkpoint every 100 steps. lr 2e-3 kills
## ReLU paths of the deep decoders; photonet needs 2e-4.
train-photonas: install
	$(STYLENAS) train $(SHARED)/data/train --arch photonas -o runs/photonas --resume \
		--steps $(or $(STEPS),4000) --batch 8 --size 128 --lr 5e-4 --pixel-weight 50 \
		--levels relu1_1,relu2_1,relu3_1 --checkpoint-every 100 --val-every 250

train-photonet: install
	$(STYLENAS) train $(SHARED)/data/train --arch photonet -o runs/photonet --resume \
		--steps $(or $(STEPS),4000) --batch 8 --size 128 --lr 2e-4 --pixel-weight 50 \
		--levels relu1_1,relu2_1,relu3_1 --checkpoint-every 100 --val-every 250

train-wct5: install
	$(STYLENAS) train $(SHARED)/data/train --arch wct5 -o runs/wct5 --resume \
		--steps $(or $(STEPS),3000) --batch 8 --size 128 --lr 5e-4 --pixel-weight 50 \
		--levels relu1_1,relu2_1,relu3_1 --checkpoint-every 100 --val-every 250

## The search's weight-sharing supernet: PhotoNet fine-tuned with the sandwich rule from the
## shipped photonet, ~4 s a step on 2 cores; exported to weights/supernet.pt.
train-supernet: install
	$(STYLENAS) supernet $(SHARED)/data/train -o runs/supernet --resume \
		--steps $(or $(STEPS),1000) --batch 4 --size 128 --subnets 2 --lr 1e-4 \
		--pixel-weight 50 --levels relu1_1,relu2_1,relu3_1 --checkpoint-every 25 \
		--export weights/supernet.pt

BENCH ?= $(SHARED)/data/bench
BENCH_ARCHS ?= photonas photonet wct5
# e.g. EVAL_FLAGS="--weights photonas=runs/photonas/last.pt --max-size 512"
EVAL_FLAGS ?=

## Quality vs the authors' PhotoNAS/PhotoNet, DPST and colour transfer (../shared/EVAL.md).
bench: install
	$(STYLENAS) eval $(BENCH)/stylenas $(foreach a,$(BENCH_ARCHS),--arch $(a)) \
		-o runs/eval/stylenas --overwrite $(EVAL_FLAGS)
	$(STYLENAS) eval $(BENCH)/dpst $(foreach a,$(BENCH_ARCHS),--arch $(a)) --masks --auto-masks \
		-o runs/eval/dpst --overwrite $(EVAL_FLAGS)

## Speed to the floor in one run: process overhead, the encoder floor, the style pass, each
## shipped arch at 512² and 1024² (native and lifted) with ratios, baselines, video frames/s.
VIDEO_CLIP = $(SHARED)/data/video/mountain_2.mp4
bench-speed: install
	$(STYLENAS) bench-speed --arch photonas --arch photonet --sizes 512,1024 \
		$(if $(wildcard $(VIDEO_CLIP)),--video $(VIDEO_CLIP)) $(BENCH_SPEED_ARGS)

## Video: CPU frames/s at the real clip's size (photonas), flicker ratio with and without
## --stabilize, and peak memory on a synthetic 600-frame clip.
bench-video: install
	$(PY) scripts/bench_video.py --video $(SHARED)/data/video/mountain_2.mp4 --device cpu \
		--long 600 $(BENCH_VIDEO_ARGS)

## Any size: wall time, peak RSS and quality of the lifted and native modes on the hires
## pairs, then a 12 MP and an 8K photo beside the same photos downscaled to the work size.
bench-hires: install
	$(PY) scripts/bench_hires.py --pairs $(BENCH)/hires $(BENCH_HIRES_ARGS)

## Many photos, one style: a shell loop of calls vs one call on the folder vs --backend ray with
## 2 local workers (images/s and ratios; outputs compared pixel for pixel).
bench-batch: install
	$(PY) scripts/bench_batch.py $(BENCH_BATCH_ARGS)

## 3D LUTs: fidelity of the fitted LUT to the pipeline on the dev pairs (PSNR, EVAL metrics
## beside Reinhard's), a 33³ LUT on a 12 MP photo against stylising it, video --mode lut against
## per-frame (frames/s, flicker); contact sheet and report.json in runs/bench-lut/ (~40 min).
bench-lut: install
	$(PY) scripts/bench_lut.py --bench $(BENCH) --video $(VIDEO_CLIP) $(BENCH_LUT_ARGS)

## How much of the pipeline a global LUT can hold: fit variants, 65³ and the bound of any global
## colour mapping, PSNR against the pipeline on the dev pairs (~15 min).
lut-ceiling: install
	$(PY) scripts/lut_ceiling.py --bench $(BENCH)

## Throughput in one run: the I/O floor (PIL decode + encode of a 12 MP JPEG), import torch,
## one 12 MP photo process, N x 12 MP in one call, color-matcher MKL, 1080p video; ratios.
bench-throughput: install
	$(PY) scripts/bench_throughput.py --hires $(BENCH)/hires --video $(VIDEO_CLIP) $(BENCH_THROUGHPUT_ARGS)

## 500 generated photos and a 2-minute generated video with audio, one process each: resident
## memory and open file descriptors must stay flat (prints first/last/max). Not in `make test`.
soak: install
	$(PY) scripts/soak.py $(SOAK_ARGS)

## --auto-masks' matching scored against the drawn DPST label maps (~1 min; README "Hard pairs").
match-report: install
	$(PY) scripts/match_report.py $(BENCH)/dpst

## The sweep that chose the lift's defaults (work size x radius x eps, ~1 h on 2 cores).
sweep-lift: install
	$(PY) scripts/sweep_lift.py $(BENCH)/stylenas $(BENCH)/dpst -o runs/sweep/dev.csv

## Architecture search on the CPU with the supernet proxy: aging evolution, population 50,
## sample 10, 200 models; the 5 fittest and photonas are then trained 120 steps from scratch and
## the winner picked among them (--rerank); it stylises a sample pair.
SEARCH_DEMO = --population 50 --sample 10 --budget 200 --val-size 128 --val-count 4 --rerank 5 \
	--train-steps 120 --device cpu --train-data $(SHARED)/data/train --resume

search-demo: install
	$(STYLENAS) search $(SEARCH_DEMO) -o runs/search-demo
	$(STYLENAS) stylize $(SKIMAGE_DATA)/chelsea.png --style $(SKIMAGE_DATA)/coffee.png \
		--arch runs/search-demo/best.json -o demo/search_chelsea_coffee.png --overwrite

## The same budget and seed with random search.
search-demo-random: install
	$(STYLENAS) search $(SEARCH_DEMO) --strategy random -o runs/search-demo-random

## The search for a network to ship: candidates no costlier than photonas (GFLOPs), scored on
## 8 pairs of held-aside photos, starting from photonas and its ten one-bit neighbours within
## the cap; the 8 fittest and those eleven then trained 120 steps each, three seeds (~1 h).
PHOTONAS_NEIGHBOURS = 01010000000100000000000000000111,11010000000100000000000000000111,\
00010000000100000000000000000111,01000000000100000000000000000111,\
01010000001100000000000000000111,01010000000000000000000000000111,\
01010000000100010000000000000111,01010000000100000000000000010111,\
01010000000100000000000000000011,01010000000100000000000000000000,\
01010000000100000000000000000110
search-capped: install
	$(STYLENAS) search --max-gflops photonas --include $(subst $(space),,$(PHOTONAS_NEIGHBOURS)) \
		--population 50 --sample 10 --budget 200 --val-size 128 --val-count 8 --rerank 8 \
		--rerank-seeds 3 --train-steps 120 --device cpu --train-data $(SHARED)/data/train -o runs/search-ship --resume

## A genotype trained as the shipped photonas was (five phases, ~4.5 h on one thread,
## resumable): make train-recipe ARCH=<32 bits> NAME=<name> -> runs/recipe/<name>/weights.pt
train-recipe: install
	$(PY) scripts/train_recipe.py --arch $(ARCH) -o runs/recipe/$(NAME)

## Evolution against random search on the supernet proxy: SEEDS seeds x BUDGET models each
## (two processes sharing one memo of scores), then the P-step against random.
SEEDS ?= 5
BUDGET ?= 200
search-compare: install
	OMP_NUM_THREADS=1 $(PY) scripts/search_compare.py --seeds $(SEEDS) --budget $(BUDGET) \
		--strategies evolution & \
	OMP_NUM_THREADS=1 $(PY) scripts/search_compare.py --seeds $(SEEDS) --budget $(BUDGET) \
		--strategies random; wait
	$(PY) scripts/search_compare.py --seeds $(SEEDS) --budget $(BUDGET) --pstep

## How each proxy ranks genotypes against stand-alone training (TRAIN=1 trains the
## nine stand-alone networks first, 600 steps each: ~35 min a genotype, resumable).
proxy-fidelity: install
	$(PY) scripts/proxy_fidelity.py $(if $(TRAIN),--train --steps $(or $(STEPS),600))

## Needs photonet weights: the shipped file, or TEACHER=runs/photonet/last.pt
PRUNE_DEMO = --population 8 --sample 3 --budget 24 --workers 2 --image-size 64 --batch 4 \
	--val-size 128 --val-count 4 --device cpu --train-data $(SHARED)/data/train \
	--val-pairs $(SHARED)/data/bench/stylenas --resume

prune-demo: install
	$(STYLENAS) prune $(PRUNE_DEMO) --teacher photonet $(if $(TEACHER),--teacher-weights $(TEACHER)) \
		--train-steps 100 --final-steps 400 -o runs/prune-demo
	$(STYLENAS) stylize $(SKIMAGE_DATA)/chelsea.png --style $(SKIMAGE_DATA)/coffee.png \
		--arch runs/prune-demo/best.json -o demo/prune_chelsea_coffee.png --overwrite

clean:
	rm -rf $(VENV) demo .pytest_cache

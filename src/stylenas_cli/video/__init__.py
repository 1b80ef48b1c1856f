"""Video: ffmpeg streams (:mod:`.ffmpeg`), temporal stabilisation (:mod:`.stabilize`), the
streaming pipeline (:mod:`.pipeline`) and temporal-stability metrics (:mod:`.temporal`)."""

from .ffmpeg import VideoError, VideoInfo, probe, read_frames
from .pipeline import VideoConfig, VideoResult, parse_frames, plan_output, stylize_video
from .stabilize import StabilizeConfig, Stabilizer, stylize_frames
from .temporal import FlickerMeter, WarpErrorMeter, flicker_ratio, has_flow, measure_videos

__all__ = [
    "FlickerMeter",
    "StabilizeConfig",
    "Stabilizer",
    "VideoConfig",
    "VideoError",
    "VideoInfo",
    "VideoResult",
    "WarpErrorMeter",
    "flicker_ratio",
    "has_flow",
    "measure_videos",
    "parse_frames",
    "plan_output",
    "probe",
    "read_frames",
    "stylize_frames",
    "stylize_video",
]

import json

from click.testing import CliRunner

from stylenas_cli.cli import main


def test_arch_reports_parameters_and_flops_consistently():
    res = CliRunner().invoke(main, ["arch", "photonas", "photonet", "--size", "64", "--json"])
    assert res.exit_code == 0, res.output
    nas, net = (json.loads(line) for line in res.output.splitlines())
    assert nas["genotype"] == "01010000000100000000000000001111"
    assert nas["transfer_points"] == ["relu1_1", "d5"]
    assert nas["used_points"] == ["relu1_1"]  # the decoder's own points are off by default
    assert net["used_points"] == [p for p in net["transfer_points"] if p.startswith("relu")]
    assert 0 < nas["parameters"] < net["parameters"]
    assert 0 < nas["gflops_64"] < net["gflops_64"]
    assert "unused" not in net["bits_on"] and len(net["bits_on"]) == 31


def test_arch_rejects_a_bad_genotype_in_one_line():
    res = CliRunner().invoke(main, ["arch", "0101"])
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and "has 4 bits" in res.stderr

"""engine/sampler.py: batches are a pure function of position, rank-split exactly."""
from paddle_fcn.engine.sampler import StreamBatchSampler


def test_sampler_is_a_pure_function_of_position():
    full = list(StreamBatchSampler(10, 4, 6, seed=3))
    resumed = list(StreamBatchSampler(10, 4, 6, start=2, seed=3))
    assert resumed == full[2:]
    epoch0 = [i for b in full for i, _ in b][:10]
    assert sorted(epoch0) == list(range(10))  # every sample once per epoch
    seeds = [s for b in full for _, s in b]
    assert len(set(seeds)) == len(seeds)


def test_two_ranks_see_the_single_process_batches():
    one = list(StreamBatchSampler(7, 4, 3, seed=1))
    r0 = list(StreamBatchSampler(7, 2, 3, seed=1, rank=0, world_size=2))
    r1 = list(StreamBatchSampler(7, 2, 3, seed=1, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == one


"""Class-balanced batching: composition, determinism, errors and the distributed split."""

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from rift_fast.training.sampling import ClassBalancedBatchSampler

# 3 classes of 10, 7 and 13 examples, interleaved.
LABELS = [0] * 10 + [1] * 7 + [2] * 13
LABELS = [LABELS[(i * 7) % len(LABELS)] for i in range(len(LABELS))]  # 7 is coprime with 30: a permutation


def test_every_batch_is_class_balanced_and_class_major():
    sampler = ClassBalancedBatchSampler(LABELS, batch_size=6, seed=0)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 7 // 2  # smallest class (7) / per-class share (2)
    for batch in batches:
        assert len(batch) == 6
        assert [LABELS[i] for i in batch] == [0, 0, 1, 1, 2, 2]
    seen = [i for batch in batches for i in batch]
    assert len(seen) == len(set(seen))  # no repeats within an epoch


def test_larger_classes_are_subsampled_differently_each_epoch_and_seeded():
    sampler = ClassBalancedBatchSampler(LABELS, batch_size=6, seed=3)
    again = ClassBalancedBatchSampler(LABELS, batch_size=6, seed=3)
    assert list(sampler) == list(again) == list(sampler)  # same seed and epoch: same batches
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    again.set_epoch(1)
    assert list(again) == second
    other_seed = ClassBalancedBatchSampler(LABELS, batch_size=6, seed=4)
    assert list(other_seed) != first
    # Over many epochs every example of the largest class is drawn.
    drawn = set()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn |= {i for batch in sampler for i in batch if LABELS[i] == 2}
    assert drawn == {i for i, y in enumerate(LABELS) if y == 2}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="not divisible by the number of classes 3"):
        ClassBalancedBatchSampler(LABELS, batch_size=7)
    with pytest.raises(ValueError, match=r"class 1 has 7 examples, fewer than batch_size / num_classes = 8") as error:
        ClassBalancedBatchSampler(LABELS, batch_size=24)
    assert "class 0: 10, class 1: 7, class 2: 13" in str(error.value)
    with pytest.raises(ValueError, match="class 3 has 0 examples"):
        ClassBalancedBatchSampler(LABELS, batch_size=8, num_classes=4)
    with pytest.raises(ValueError, match="not divisible by world_size 4"):
        ClassBalancedBatchSampler(LABELS, batch_size=6, world_size=4)
    with pytest.raises(ValueError, match="rank"):
        ClassBalancedBatchSampler(LABELS, batch_size=6, rank=2, world_size=2)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_together_cover_the_single_process_batches(world_size):
    labels = [0] * 20 + [1] * 17
    single = ClassBalancedBatchSampler(labels, batch_size=8, seed=1)
    ranks = [
        ClassBalancedBatchSampler(labels, batch_size=8, seed=1, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    for epoch in (0, 5):
        single.set_epoch(epoch)
        for sampler in ranks:
            sampler.set_epoch(epoch)
        shards = [list(sampler) for sampler in ranks]
        for b, batch in enumerate(single):
            parts = [shard[b] for shard in shards]
            assert sorted(i for part in parts for i in part) == sorted(batch)
            for part in parts:  # every rank's share is class-balanced too
                assert Counter(labels[i] for i in part) == {0: 4 // world_size, 1: 4 // world_size}
        assert all(len(shard) == len(single) for shard in shards)


def _rank_batches(labels, world_size, epoch, consumed_samples=0, **options):
    """Every rank's batches of ``epoch`` from ``consumed_samples`` on, by rank."""
    samplers = [
        ClassBalancedBatchSampler(labels, batch_size=12, seed=4, rank=r, world_size=world_size, **options)
        for r in range(world_size)
    ]
    for sampler in samplers:
        sampler.set_epoch(epoch, consumed_samples)
    return [list(sampler) for sampler in samplers]


@pytest.mark.parametrize("length_group", [0, 2])
@pytest.mark.parametrize(("before", "after", "steps"), [(2, 3, 2), (2, 1, 3), (3, 2, 1), (1, 3, 4), (2, 2, 0)])
def test_an_epoch_stopped_with_n_ranks_continues_with_m_on_exactly_the_rest(before, after, steps, length_group):
    labels = [0] * 40 + [1] * 33  # 5 global batches of 12 (6 per class): 30 of class 0 and 3 of class 1 left out
    options = {"lengths": [(i * 37) % 61 + 3 for i in range(73)], "length_group": length_group}
    (whole,) = _rank_batches(labels, 1, epoch=3, **options)
    stopped = _rank_batches(labels, before, epoch=3, **options)
    consumed = {i for shard in stopped for batch in shard[:steps] for i in batch}
    resumed = _rank_batches(labels, after, epoch=3, consumed_samples=12 * steps, **options)
    rest = [i for shard in resumed for batch in shard for i in batch]
    assert all(len(shard) == len(whole) - steps for shard in resumed)
    assert len(rest) == len(set(rest)) and not consumed & set(rest)  # nothing seen twice
    assert consumed | set(rest) == {i for batch in whole for i in batch}  # nothing skipped: one epoch
    for step, batch in enumerate(whole[steps:]):  # and in the epoch's own order, batch by batch
        assert sorted(i for shard in resumed for i in shard[step]) == sorted(batch)


def test_a_position_is_whole_global_batches_within_the_epoch():
    sampler = ClassBalancedBatchSampler([0] * 10 + [1] * 10, batch_size=4, seed=0, world_size=2)
    assert sampler.samples_per_epoch == 20
    sampler.set_epoch(1, 20)
    assert list(sampler) == []  # the whole epoch consumed
    for wrong in (-4, 6, 24):
        with pytest.raises(ValueError, match="multiple of the global batch size 4"):
            sampler.set_epoch(1, wrong)


def test_works_as_a_dataloader_batch_sampler():
    labels = torch.tensor(LABELS)
    dataset = TensorDataset(torch.arange(len(LABELS)), labels)
    loader = DataLoader(dataset, batch_sampler=ClassBalancedBatchSampler(labels, batch_size=3, seed=0))
    batches = list(loader)
    assert len(batches) == 7
    for index, label in batches:
        assert label.tolist() == [0, 1, 2]
        assert torch.equal(labels[index], label)


def _padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


@pytest.mark.parametrize("group", [1, 2, 5])
def test_length_grouped_batches_keep_balance_and_examples_and_cut_padding(group):
    labels = [i % 2 for i in range(400)]
    lengths = [(i * 37) % 61 + 3 for i in range(400)]  # 3..63 tokens, spread over both classes
    plain = ClassBalancedBatchSampler(labels, batch_size=8, seed=5)
    grouped = ClassBalancedBatchSampler(labels, batch_size=8, seed=5, lengths=lengths, length_group=group)
    batches = list(grouped)
    assert len(batches) == len(plain) == 50
    assert sorted(i for b in batches for i in b) == sorted(i for b in plain for i in b)  # the same examples drawn
    for batch in batches:
        assert [labels[i] for i in batch] == [0, 0, 0, 0, 1, 1, 1, 1]
    # Each group of a class's random draw is spread, sorted by length, over `group` batches of 4.
    chunk = 4 * group
    for members in ([i for b in plain for i in b if labels[i] == c] for c in (0, 1)):
        for start in range(0, len(members), chunk):
            block = set(members[start : start + chunk])
            shares = sorted(
                ([i for i in b if i in block] for b in batches if set(b) & block), key=lambda s: lengths[s[0]]
            )
            assert len(shares) == group and all(len(share) == 4 for share in shares)
            spread = [lengths[i] for share in shares for i in share]
            assert spread == sorted(lengths[i] for i in block)
    if group > 1:
        assert _padded_tokens(batches, lengths) < _padded_tokens(list(plain), lengths)
    assert list(grouped) == batches  # seeded
    grouped.set_epoch(1)
    assert list(grouped) != batches


def test_length_grouping_needs_a_length_per_example():
    with pytest.raises(ValueError, match="one length per example"):
        ClassBalancedBatchSampler(LABELS, batch_size=6, length_group=2)
    with pytest.raises(ValueError, match="one length per example"):
        ClassBalancedBatchSampler(LABELS, batch_size=6, lengths=[1, 2], length_group=2)
    with pytest.raises(ValueError, match="length_group"):
        ClassBalancedBatchSampler(LABELS, batch_size=6, lengths=[1] * len(LABELS), length_group=-1)

using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

public sealed class RulesHeapTests
{
    private const long Max = 1_000_000_000;

    /// <summary>One sample a minute over the last hour: a 5-minute allocation sawtooth on top of a floor.</summary>
    private static List<HeapObservation> Sawtooth(Func<int, long> floor, bool countCollections, double gcSharePerSecond = 0.01)
    {
        var list = new List<HeapObservation>();
        for (var i = 0; i < 60; i++)
        {
            var sinceGc = i % 5;
            list.Add(new HeapObservation(
                RulesTestData.Now - TimeSpan.FromMinutes(59 - i),
                floor(i) + (sinceGc * 50_000_000),
                Max,
                collectionsTotal: 100 + (i * 10),
                gcTimeSeconds: 10 + (i * 60 * gcSharePerSecond),
                uptimeSeconds: 3_600 + (i * 60),
                oldCollections: countCollections ? 10 + (i / 5) : null));
        }

        return list;
    }

    [Fact]
    public void Rising_floor_between_old_collections_breaches()
    {
        // +1% of max per 5 minutes = 12% per hour, threshold 5%.
        var result = new OldGenGrowthRule().Evaluate(RulesTestData.Heap(Sawtooth(i => 200_000_000 + ((i / 5) * 10_000_000), true)));

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("minimum between old collections", result.Evidence["method"]);
        Assert.StartsWith("200000000, 210000000, 220000000", result.Evidence["oldUsedAfterGcBytes"], StringComparison.Ordinal);
        Assert.Equal("0.12", result.Evidence["growthOfMaxPerHour"]);
    }

    [Fact]
    public void A_young_jvm_whose_floor_rises_over_a_few_seconds_of_start_up_is_not_judged()
    {
        // Seen with a healthy service just started: four old collections 3 to 4 s apart, the floor 0 -> 1.9 MB of a
        // 179 MB old generation, which a slope would call 365 % of max per hour.
        var floors = new long[] { 0, 927_552, 1_428_624, 1_930_272 };
        var samples = floors.Select((f, i) => new HeapObservation(
            RulesTestData.Now - TimeSpan.FromSeconds(10 - (i * 3.3)), f, 178_978_816, collectionsTotal: 10 + i, gcTimeSeconds: 0.1 * i,
            uptimeSeconds: 5 + (i * 3), oldCollections: i)).ToList();

        var result = new OldGenGrowthRule().Evaluate(RulesTestData.Heap(samples));

        Assert.False(result.Breached, result.Summary);
        Assert.True(result.InsufficientData, result.Summary);
        Assert.Contains("00:15:00", result.Summary, StringComparison.Ordinal);

        // A rise spread over more than a quarter of the window is judged: 7.7 MB in 18 minutes is 14 % of max per hour.
        var spread = samples.Select((s, i) => new HeapObservation(RulesTestData.Now - TimeSpan.FromMinutes(20 - (i * 6)), s.OldUsedBytes * 4, s.OldMaxBytes,
            s.CollectionsTotal, s.GcTimeSeconds, s.UptimeSeconds, s.OldCollections)).ToList();
        Assert.True(new OldGenGrowthRule().Evaluate(RulesTestData.Heap(spread)).Breached);
    }

    [Fact]
    public void A_flat_floor_with_a_big_sawtooth_does_not_breach()
    {
        var result = new OldGenGrowthRule().Evaluate(RulesTestData.Heap(Sawtooth(_ => 200_000_000, true)));

        Assert.False(result.Breached, result.Summary);
    }

    [Fact]
    public void One_collection_that_leaves_a_high_floor_does_not_breach()
    {
        var result = new OldGenGrowthRule().Evaluate(RulesTestData.Heap(Sawtooth(i => i / 5 == 7 ? 600_000_000 : 200_000_000, true)));

        Assert.False(result.Breached, result.Summary);
    }

    [Fact]
    public void Without_collection_counts_the_lower_envelope_of_sub_windows_is_used()
    {
        var rising = new OldGenGrowthRule().Evaluate(RulesTestData.Heap(Sawtooth(i => 200_000_000 + (i * 2_000_000), false)));
        var flat = new OldGenGrowthRule().Evaluate(RulesTestData.Heap(Sawtooth(_ => 200_000_000, false)));

        Assert.True(rising.Breached, rising.Summary);
        Assert.StartsWith("lower envelope", rising.Evidence["method"], StringComparison.Ordinal);
        Assert.Equal(6, rising.Evidence["oldUsedAfterGcBytes"].Split(", ").Length);
        Assert.False(flat.Breached, flat.Summary);
    }

    [Fact]
    public void Gc_overhead_above_the_threshold_breaches()
    {
        var result = new GcOverheadRule().Evaluate(RulesTestData.Heap(Sawtooth(_ => 1, true, gcSharePerSecond: 0.13)));

        Assert.True(result.Breached, result.Summary);
        Assert.Equal("0.13", result.Evidence["share"]);
        Assert.Equal("240", result.Evidence["wallSeconds"]);
    }

    [Fact]
    public void Gc_overhead_below_the_threshold_does_not_breach()
    {
        var result = new GcOverheadRule().Evaluate(RulesTestData.Heap(Sawtooth(_ => 1, true, gcSharePerSecond: 0.05)));

        Assert.False(result.Breached, result.Summary);
        Assert.Equal("0.05", result.Evidence["share"]);
    }

    [Fact]
    public void Gc_overhead_is_measured_only_since_a_restart()
    {
        var before = Enumerable.Range(0, 3).Select(i => new HeapObservation(RulesTestData.Now - TimeSpan.FromMinutes(4.5 - i), 1, Max, 10, 500 + (i * 50), 5_000 + (i * 60))).ToList();
        var after = Enumerable.Range(0, 3).Select(i => new HeapObservation(RulesTestData.Now - TimeSpan.FromMinutes(2 - i), 1, Max, 1, 1 + (i * 1.2), 10 + (i * 60))).ToList();

        var result = new GcOverheadRule().Evaluate(RulesTestData.Heap([.. before, .. after]));

        Assert.False(result.Breached, result.Summary);
        Assert.Equal("0.02", result.Evidence["share"]);
    }

    [Fact]
    public void Gc_overhead_with_a_non_finite_counter_is_not_judged()
    {
        var samples = Enumerable.Range(0, 4).Select(i => new HeapObservation(RulesTestData.Now - TimeSpan.FromMinutes(3 - i), 1, Max, 1, i == 3 ? double.NaN : i, i * 60)).ToList();

        var result = new GcOverheadRule().Evaluate(RulesTestData.Heap(samples));

        Assert.False(result.Breached);
        Assert.Contains("finite", result.Summary, StringComparison.Ordinal);
    }

}

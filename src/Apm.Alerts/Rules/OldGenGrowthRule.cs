namespace Apm.Alerts.Rules;

/// <summary>
/// Old-generation live set growth: the occupancy left after collections (the floor, not the
/// sawtooth) keeps rising, so something retains more and more objects.
/// </summary>
public sealed class OldGenGrowthRule : IAlertRule
{
    private readonly OldGenGrowthOptions _options;

    /// <summary>Creates the rule; throws <see cref="ArgumentOutOfRangeException"/> on invalid options.</summary>
    public OldGenGrowthRule(OldGenGrowthOptions? options = null)
    {
        _options = options ?? new OldGenGrowthOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public string Id => RuleIds.OldGenGrowth;

    /// <inheritdoc />
    public RuleResult Evaluate(JvmRuleState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        var samples = JvmRuleState.InWindow(state.Heap, s => s.Time, state.Now, o.Window);
        if (samples.Count == 0)
        {
            return RuleResult.Insufficient("No heap samples in the window.");
        }

        var byCollections = samples.All(s => s.OldCollections is not null);
        var floor = byCollections ? MinimaBetweenCollections(samples) : LowerEnvelope(samples, state.Now - o.Window, o.Window, o.SubWindows);
        if (floor.Count < o.MinSamples)
        {
            return RuleResult.Insufficient($"Not enough post-collection points in the window ({floor.Count} of {o.MinSamples}).");
        }

        if (floor[^1].Time - floor[0].Time < o.EffectiveMinSpan)
        {
            return RuleResult.Insufficient($"The post-collection points span {Fmt.Span(floor[^1].Time - floor[0].Time)}, less than the {Fmt.Span(o.EffectiveMinSpan)} needed.");
        }

        var t0 = floor[0].Time;
        var slope = RobustStats.TheilSenSlope(floor.Select(p => ((p.Time - t0).TotalSeconds, (double)p.OldUsedBytes)).ToList()) ?? 0;
        var max = samples.Max(s => s.OldMaxBytes);
        if (max <= 0)
        {
            max = samples.Max(s => s.OldUsedBytes);
        }

        var perHour = max > 0 ? slope * 3600 / max : 0;
        var evidence = new Dictionary<string, string>
        {
            ["window"] = Fmt.Span(o.Window),
            ["method"] = byCollections ? "minimum between old collections" : $"lower envelope of {o.SubWindows} sub-windows",
            ["times"] = Fmt.Times(floor.Select(p => p.Time)),
            ["oldUsedAfterGcBytes"] = Fmt.Series(floor.Select(p => p.OldUsedBytes)),
            ["oldMaxBytes"] = Fmt.N(max),
            ["slopeBytesPerSecond"] = Fmt.N(slope),
            ["growthOfMaxPerHour"] = Fmt.N(perHour),
            ["threshold"] = Fmt.N(o.Threshold),
        };

        if (perHour <= o.Threshold || floor[^1].OldUsedBytes <= floor[0].OldUsedBytes)
        {
            return RuleResult.NotBreached($"Old generation after GC grows {Fmt.N(perHour * 100)}% of max per hour (threshold {Fmt.N(o.Threshold * 100)}%).", evidence);
        }

        return new RuleResult(
            true,
            $"Old generation after GC rose from {Fmt.N(floor[0].OldUsedBytes)} to {Fmt.N(floor[^1].OldUsedBytes)} bytes ({Fmt.N(perHour * 100)}% of max per hour, threshold {Fmt.N(o.Threshold * 100)}%).",
            evidence,
            [
                "Compare two class histograms (or heap dumps) a while apart to find the classes that grow.",
                "Check TimerRetainedFinalizable and FinalizerBacklog for this JVM.",
            ]);
    }

    /// <summary>One point per run of samples with the same old-collection count: its minimum, i.e. the occupancy just after that collection.</summary>
    private static List<HeapObservation> MinimaBetweenCollections(List<HeapObservation> samples)
    {
        var floor = new List<HeapObservation>();
        HeapObservation? best = null;
        long? current = null;
        foreach (var s in samples)
        {
            if (s.OldCollections != current)
            {
                if (best is { } done)
                {
                    floor.Add(done);
                }

                best = null;
                current = s.OldCollections;
            }

            if (best is not { } b || s.OldUsedBytes < b.OldUsedBytes)
            {
                best = s;
            }
        }

        if (best is { } last)
        {
            floor.Add(last);
        }

        return floor;
    }

    /// <summary>Minimum of each non-empty equal sub-window: a lower envelope that ignores the allocation sawtooth.</summary>
    private static List<HeapObservation> LowerEnvelope(List<HeapObservation> samples, DateTimeOffset from, TimeSpan window, int parts)
    {
        var floor = new List<HeapObservation>();
        var slice = window / parts;
        foreach (var group in samples.GroupBy(s => Math.Min(parts - 1, (int)((s.Time - from) / slice))).OrderBy(g => g.Key))
        {
            floor.Add(group.MinBy(s => s.OldUsedBytes));
        }

        return floor;
    }
}

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
        var samples = JvmRuleState.InWindow(state.Heap, state.Now, o.Window);
        if (samples.Count == 0)
        {
            return RuleResult.Insufficient("No heap samples in the window.");
        }

        var byCollections = true;
        long max = 0, maxUsed = 0;
        for (var i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            byCollections &= s.OldCollections is not null;
            max = Math.Max(max, s.OldMaxBytes);
            maxUsed = Math.Max(maxUsed, s.OldUsedBytes);
        }

        var floor = byCollections ? MinimaBetweenCollections(samples) : LowerEnvelope(samples, state.Now - o.Window, o.Window, o.SubWindows);
        if (floor.Count < o.MinSamples)
        {
            return RuleResult.Insufficient($"Not enough post-collection points in the window ({floor.Count} of {o.MinSamples}).");
        }

        if (floor[^1].Time - floor[0].Time < o.EffectiveMinSpan)
        {
            return RuleResult.Insufficient($"The post-collection points span {Fmt.Span(floor[^1].Time - floor[0].Time)}, less than the {Fmt.Span(o.EffectiveMinSpan)} needed.");
        }

        if (max <= 0)
        {
            max = maxUsed;
        }

        // A floor that ends no higher than it starts is not growth whatever its slope: no slope needed.
        var rising = floor[^1].OldUsedBytes > floor[0].OldUsedBytes;
        var t0 = floor[0].Time;
        var slope = 0.0;
        if (rising)
        {
            var x = new double[floor.Count];
            var y = new double[floor.Count];
            for (var i = 0; i < floor.Count; i++)
            {
                x[i] = (floor[i].Time - t0).TotalSeconds;
                y[i] = floor[i].OldUsedBytes;
            }

            slope = RobustStats.TheilSenSlope(x, y) ?? 0;
        }

        var perHour = max > 0 ? slope * 3600 / max : 0;
        Dictionary<string, string> Evidence()
        {
            var evidence = new Dictionary<string, string>
            {
                ["window"] = Fmt.Span(o.Window),
                ["method"] = byCollections ? "minimum between old collections" : $"lower envelope of {o.SubWindows} sub-windows",
                ["times"] = Fmt.Times(floor.Select(p => p.Time)),
                ["oldUsedAfterGcBytes"] = Fmt.Series(floor.Select(p => p.OldUsedBytes)),
                ["oldMaxBytes"] = Fmt.N(max),
                ["threshold"] = Fmt.N(o.Threshold),
            };
            if (rising)
            {
                evidence["slopeBytesPerSecond"] = Fmt.N(slope);
                evidence["growthOfMaxPerHour"] = Fmt.N(perHour);
            }

            return evidence;
        }

        if (!rising)
        {
            return RuleResult.NotBreached($"Old generation after GC did not rise over the window ({Fmt.N(floor[0].OldUsedBytes)} to {Fmt.N(floor[^1].OldUsedBytes)} bytes).", Evidence);
        }

        if (perHour <= o.Threshold)
        {
            return RuleResult.NotBreached($"Old generation after GC grows {Fmt.N(perHour * 100)}% of max per hour (threshold {Fmt.N(o.Threshold * 100)}%).", Evidence);
        }

        return new RuleResult(
            true,
            $"Old generation after GC rose from {Fmt.N(floor[0].OldUsedBytes)} to {Fmt.N(floor[^1].OldUsedBytes)} bytes ({Fmt.N(perHour * 100)}% of max per hour, threshold {Fmt.N(o.Threshold * 100)}%).",
            Evidence(),
            [
                "Compare two class histograms (or heap dumps) a while apart to find the classes that grow.",
                "Check TimerRetainedFinalizable and FinalizerBacklog for this JVM.",
            ]);
    }

    /// <summary>One point per run of samples with the same old-collection count: its minimum, i.e. the occupancy just after that collection.</summary>
    private static List<HeapObservation> MinimaBetweenCollections(Window<HeapObservation> samples)
    {
        var floor = new List<HeapObservation>();
        HeapObservation? best = null;
        long? current = null;
        for (var i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
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
    private static List<HeapObservation> LowerEnvelope(Window<HeapObservation> samples, DateTimeOffset from, TimeSpan window, int parts)
    {
        // Samples are in time order, so each sub-window is one run: one pass, one point per run.
        var floor = new List<HeapObservation>(parts);
        var slice = window / parts;
        var current = -1;
        for (var i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            var part = Math.Min(parts - 1, (int)((s.Time - from) / slice));
            if (part != current)
            {
                floor.Add(s);
                current = part;
            }
            else if (s.OldUsedBytes < floor[^1].OldUsedBytes)
            {
                floor[^1] = s;
            }
        }

        return floor;
    }
}

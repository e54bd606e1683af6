namespace Apm.Alerts.Rules;

/// <summary>Share of wall time spent in GC over the window above a threshold: the JVM is busy collecting instead of working.</summary>
public sealed class GcOverheadRule : IAlertRule
{
    private readonly GcOverheadOptions _options;

    /// <summary>Creates the rule; throws <see cref="ArgumentOutOfRangeException"/> on invalid options.</summary>
    public GcOverheadRule(GcOverheadOptions? options = null)
    {
        _options = options ?? new GcOverheadOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public string Id => RuleIds.GcOverhead;

    /// <inheritdoc />
    public RuleResult Evaluate(JvmRuleState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        var samples = JvmRuleState.InWindow(state.Heap, state.Now, o.Window);

        // Counters restart with the JVM: measure only since the last restart (uptime going down).
        var start = 0;
        for (var i = 1; i < samples.Count; i++)
        {
            if (samples[i].UptimeSeconds < samples[i - 1].UptimeSeconds || samples[i].GcTimeSeconds < samples[i - 1].GcTimeSeconds)
            {
                start = i;
            }
        }

        samples = samples.From(start);
        if (samples.Count < o.MinSamples)
        {
            return RuleResult.Insufficient($"Not enough heap samples since the last restart in the window ({samples.Count} of {o.MinSamples}).");
        }

        var first = samples[0];
        var last = samples[samples.Count - 1];
        var wall = last.UptimeSeconds - first.UptimeSeconds;
        var gc = last.GcTimeSeconds - first.GcTimeSeconds;
        if (!double.IsFinite(wall) || !double.IsFinite(gc))
        {
            return RuleResult.Insufficient("GC time or uptime is not a finite number; the samples cannot be judged.");
        }

        if (wall < o.MinSpan.TotalSeconds || wall <= 0)
        {
            return RuleResult.Insufficient($"Measured span of {Fmt.N(wall)} s is shorter than {Fmt.N(o.MinSpan.TotalSeconds)} s.");
        }

        var share = gc / wall;
        var collections = last.CollectionsTotal - first.CollectionsTotal;
        Dictionary<string, string> Evidence() => new()
        {
            ["window"] = Fmt.Span(o.Window),
            ["gcSeconds"] = Fmt.N(gc),
            ["wallSeconds"] = Fmt.N(wall),
            ["share"] = Fmt.N(share),
            ["collections"] = Fmt.N(collections),
            ["threshold"] = Fmt.N(o.Threshold),
        };

        if (share <= o.Threshold)
        {
            return RuleResult.NotBreached($"GC took {Fmt.N(share * 100)}% of wall time (threshold {Fmt.N(o.Threshold * 100)}%).", Evidence);
        }

        return new RuleResult(
            true,
            $"GC took {Fmt.N(share * 100)}% of wall time over the last {Fmt.N(wall)} s ({Fmt.N(gc)} s in {Fmt.N(collections)} collections; threshold {Fmt.N(o.Threshold * 100)}%).",
            Evidence(),
            [
                "Check OldGenGrowth and FinalizerBacklog for this JVM: a growing live set is the usual cause.",
                "Take a class histogram or heap dump to find what fills the heap.",
                "If the live set is stable, raise the heap size or tune the collector.",
            ]);
    }
}

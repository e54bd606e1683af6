namespace Apm.Alerts.Rules;

/// <summary>
/// Finalization queue that keeps growing and does not drain: finalize() runs slower than objects
/// arrive (a slow or blocked finalizer), so memory held by queued objects grows without bound.
/// </summary>
public sealed class FinalizerBacklogRule : IAlertRule
{
    private readonly FinalizerBacklogOptions _options;

    /// <summary>Creates the rule; throws <see cref="ArgumentOutOfRangeException"/> on invalid options.</summary>
    public FinalizerBacklogRule(FinalizerBacklogOptions? options = null)
    {
        _options = options ?? new FinalizerBacklogOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public string Id => RuleIds.FinalizerBacklog;

    /// <inheritdoc />
    public RuleResult Evaluate(JvmRuleState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        var samples = JvmRuleState.InWindow(state.Finalizer, s => s.Time, state.Now, o.Window);
        if (samples.Count < o.MinSamples)
        {
            return RuleResult.Insufficient($"Not enough finalizer samples in the window ({samples.Count} of {o.MinSamples}).");
        }

        var t0 = samples[0].Time;
        var points = samples.Select(s => ((s.Time - t0).TotalSeconds, (double)s.PendingTotal)).ToList();
        var slope = RobustStats.TheilSenSlope(points) ?? 0;

        // Both halves must rise on their own: a single step up halfway would otherwise win the median.
        var half = (points.Count + 1) / 2;
        var firstHalf = RobustStats.TheilSenSlope(points.Take(half).ToList()) ?? 0;
        var secondHalf = RobustStats.TheilSenSlope(points.Skip(points.Count - half).ToList()) ?? 0;

        var first = samples[0].PendingTotal;
        var last = samples[^1].PendingTotal;
        var span = samples[^1].Time - t0;
        var tailFrom = samples[^1].Time - (span * o.DrainTailFraction);
        var tailMin = samples.Where(s => s.Time >= tailFrom).Min(s => s.PendingTotal);

        var top = (samples[^1].TopClasses ?? [])
            .OrderByDescending(c => c.Count)
            .Take(o.TopClasses)
            .ToList();
        var evidence = new Dictionary<string, string>
        {
            ["window"] = Fmt.Span(o.Window),
            ["times"] = Fmt.Times(samples.Select(s => s.Time)),
            ["pending"] = Fmt.Series(samples.Select(s => s.PendingTotal)),
            ["slopePerSecond"] = Fmt.N(slope),
            ["firstHalfSlopePerSecond"] = Fmt.N(firstHalf),
            ["secondHalfSlopePerSecond"] = Fmt.N(secondHalf),
            ["rise"] = Fmt.N(last - first),
            ["tailMinimum"] = Fmt.N(tailMin),
            ["threshold"] = Fmt.N(o.Threshold),
            ["topClasses"] = string.Join(", ", top.Select(c => $"{c.Class} ({Fmt.N(c.Count)})")),
        };

        if (slope < o.Threshold || firstHalf < o.Threshold / 2 || secondHalf < o.Threshold / 2)
        {
            return RuleResult.NotBreached($"Finalizer queue is not rising steadily ({Fmt.N(slope)}/s, threshold {Fmt.N(o.Threshold)}/s).", evidence);
        }

        if (last - first < o.MinRise)
        {
            return RuleResult.NotBreached($"Finalizer queue rose by only {Fmt.N(last - first)} (minimum {Fmt.N(o.MinRise)}).", evidence);
        }

        if (tailMin <= o.DrainLevel)
        {
            return RuleResult.NotBreached($"Finalizer queue drained to {Fmt.N(tailMin)} late in the window.", evidence);
        }

        var names = top.Count == 0 ? "unknown classes" : string.Join(", ", top.Select(c => c.Class));
        return new RuleResult(
            true,
            $"Finalizer queue grew from {Fmt.N(first)} to {Fmt.N(last)} over {Fmt.Span(span)} ({Fmt.N(slope)}/s) without draining; top classes: {names}.",
            evidence,
            [
                "Find the finalize() method of the top classes that blocks or is slow (thread dump of the \"Finalizer\" thread).",
                "Replace finalize() with try-with-resources or java.lang.ref.Cleaner, and close the objects explicitly.",
            ]);
    }
}

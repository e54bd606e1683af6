namespace Apm.Alerts.Rules;

/// <summary>
/// Finalization queue that keeps growing and does not drain: finalize() runs slower than objects
/// arrive (a slow or blocked finalizer), so memory held by queued objects grows without bound.
/// </summary>
public sealed class FinalizerBacklogRule : IWindowedRule
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
    public ObservationKind Reads => ObservationKind.Finalizer;

    /// <inheritdoc />
    public TimeSpan Window => _options.Window;

    /// <inheritdoc />
    public RuleResult Evaluate(JvmRuleState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        var samples = JvmRuleState.InWindow(state.Finalizer, state.Now, o.Window);
        if (samples.Count < o.MinSamples)
        {
            return RuleResult.Insufficient($"Not enough finalizer samples in the window ({samples.Count} of {o.MinSamples}).");
        }

        // The cheap tests first (a healthy queue fails them), the three slopes only for a queue that rose and did not drain.
        var t0 = samples[0].Time;
        var first = samples[0].PendingTotal;
        var last = samples[samples.Count - 1].PendingTotal;
        var span = samples[samples.Count - 1].Time - t0;
        var tailFrom = samples[samples.Count - 1].Time - (span * o.DrainTailFraction);
        var tailMin = long.MaxValue;
        for (var i = samples.Count - 1; i >= 0 && samples[i].Time >= tailFrom; i--)
        {
            tailMin = Math.Min(tailMin, samples[i].PendingTotal);
        }

        if (tailMin <= o.DrainLevel)
        {
            return RuleResult.NotBreached($"Finalizer queue drained to {Fmt.N(tailMin)} late in the window.", () => Evidence(samples, tailMin, null));
        }

        if (last - first < o.MinRise)
        {
            return RuleResult.NotBreached($"Finalizer queue rose by only {Fmt.N(last - first)} (minimum {Fmt.N(o.MinRise)}).", () => Evidence(samples, tailMin, null));
        }

        var n = samples.Count;
        var x = new double[n];
        var y = new double[n];
        for (var i = 0; i < n; i++)
        {
            x[i] = (samples[i].Time - t0).TotalSeconds;
            y[i] = samples[i].PendingTotal;
        }

        // Both halves must rise on their own: a single step up halfway would otherwise win the median.
        var half = (n + 1) / 2;
        var slopes = new Slopes(
            RobustStats.TheilSenSlope(x, y) ?? 0,
            RobustStats.TheilSenSlope(x.AsSpan(0, half), y.AsSpan(0, half)) ?? 0,
            RobustStats.TheilSenSlope(x.AsSpan(n - half), y.AsSpan(n - half)) ?? 0);
        if (slopes.All < o.Threshold || slopes.FirstHalf < o.Threshold / 2 || slopes.SecondHalf < o.Threshold / 2)
        {
            return RuleResult.NotBreached(
                $"Finalizer queue is not rising steadily ({Fmt.N(slopes.All)}/s, threshold {Fmt.N(o.Threshold)}/s).", () => Evidence(samples, tailMin, slopes));
        }

        var top = TopClasses(samples[n - 1]);
        var names = top.Count == 0 ? "unknown classes" : string.Join(", ", top.Select(c => c.Class));
        return new RuleResult(
            true,
            $"Finalizer queue grew from {Fmt.N(first)} to {Fmt.N(last)} over {Fmt.Span(span)} ({Fmt.N(slopes.All)}/s) without draining; top classes: {names}.",
            Evidence(samples, tailMin, slopes),
            [
                "Find the finalize() method of the top classes that blocks or is slow (thread dump of the \"Finalizer\" thread).",
                "Replace finalize() with try-with-resources or java.lang.ref.Cleaner, and close the objects explicitly.",
            ]);
    }

    private List<(string Class, long Count)> TopClasses(FinalizerObservation sample) =>
        (sample.TopClasses ?? [])
            .OrderByDescending(c => c.Count)
            .Take(_options.TopClasses)
            .ToList();

    /// <summary>The numbers behind a verdict; slopes are left out when the cheap tests decided before they were measured.</summary>
    private Dictionary<string, string> Evidence(Window<FinalizerObservation> samples, long tailMin, Slopes? slopes)
    {
        var o = _options;
        var evidence = new Dictionary<string, string>
        {
            ["window"] = Fmt.Span(o.Window),
            ["times"] = Fmt.Times(samples.Select(s => s.Time)),
            ["pending"] = Fmt.Series(samples.Select(s => s.PendingTotal)),
            ["rise"] = Fmt.N(samples[samples.Count - 1].PendingTotal - samples[0].PendingTotal),
            ["tailMinimum"] = Fmt.N(tailMin),
            ["threshold"] = Fmt.N(o.Threshold),
            ["topClasses"] = string.Join(", ", TopClasses(samples[samples.Count - 1]).Select(c => $"{c.Class} ({Fmt.N(c.Count)})")),
        };
        if (slopes is { } s)
        {
            evidence["slopePerSecond"] = Fmt.N(s.All);
            evidence["firstHalfSlopePerSecond"] = Fmt.N(s.FirstHalf);
            evidence["secondHalfSlopePerSecond"] = Fmt.N(s.SecondHalf);
        }

        return evidence;
    }

    private readonly record struct Slopes(double All, double FirstHalf, double SecondHalf);
}

namespace Apm.Alerts.Rules;

/// <summary>
/// The CancelTimer pattern: a driver schedules a cancel task per statement on a shared
/// <c>java.util.Timer</c>; cancelling the task does not remove it from the timer's queue, so the
/// task (and through it a finalizable statement) stays reachable until its scheduled time. Seen in
/// class histograms as <c>java.lang.ref.Finalizer</c> growing in step with a finalizable class and a
/// timer task class. Works from growth alone, so any driver's class names match; uses the collector's row marks
/// (<see cref="HistogramMarks"/>) when it sent them: real <c>TimerTask</c> subclasses, classes seen in the finalization
/// queue. Never names a class that cannot be the finalizable one (<c>java.lang.Object</c>, which grows 1:1 with the
/// tasks' lock objects; a class with more instances than there are Finalizers).
/// </summary>
public sealed class TimerRetainedFinalizableRule : IWindowedRule
{
    /// <summary>The JDK class whose instances are the registered finalizable objects.</summary>
    public const string FinalizerClass = "java.lang.ref.Finalizer";

    /// <summary>JDK classes that grow with timer tasks but do not override finalize().</summary>
    private static readonly HashSet<string> NeverFinalizable = new(StringComparer.Ordinal) { "java.lang.Object", "java.util.TimerTask" };

    private readonly TimerRetainedFinalizableOptions _options;

    /// <summary>Creates the rule; throws <see cref="ArgumentOutOfRangeException"/> on invalid options.</summary>
    public TimerRetainedFinalizableRule(TimerRetainedFinalizableOptions? options = null)
    {
        _options = options ?? new TimerRetainedFinalizableOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public string Id => RuleIds.TimerRetainedFinalizable;

    /// <inheritdoc />
    public ObservationKind Reads => ObservationKind.Histograms;

    /// <inheritdoc />
    public TimeSpan Window => _options.Window;

    /// <inheritdoc />
    public RuleResult Evaluate(JvmRuleState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var o = _options;
        var samples = JvmRuleState.InWindow(state.Histograms, state.Now, o.Window).ToList();
        if (samples.Count < o.MinSamples)
        {
            return RuleResult.Insufficient($"Not enough class histograms in the window ({samples.Count} of {o.MinSamples}).");
        }

        var finalizers = samples.Select(s => s.FinalizerRegistered).ToArray();
        var finalizerGrowth = finalizers[^1] - finalizers[0];
        var evidence = new Dictionary<string, string>
        {
            ["window"] = Fmt.Span(o.Window),
            ["times"] = Fmt.Times(samples.Select(s => s.Time)),
            [FinalizerClass] = Fmt.Series(finalizers),
        };
        if (finalizerGrowth < o.MinGrowth)
        {
            return RuleResult.NotBreached($"{FinalizerClass} grew by {Fmt.N(finalizerGrowth)} (minimum {Fmt.N(o.MinGrowth)}).", evidence);
        }

        var finalizerDeltas = Deltas(finalizers);
        var marks = MarksInWindow(samples);
        // The collector lists java.util.TimerTask's subclasses: when it did, only those are timer tasks (names can mislead).
        var tasksMarked = marks.Values.Any(m => m.HasFlag(HistogramMarks.TimerTask));
        bool IsTask(string name, string? finalizable) =>
            tasksMarked ? marks.GetValueOrDefault(name).HasFlag(HistogramMarks.TimerTask) : IsTaskLike(name, finalizable);
        var inStep = new List<Match>();
        foreach (var (name, series) in SeriesPresentInAll(samples))
        {
            if (name == FinalizerClass || name.StartsWith('[') || name.StartsWith("java.lang.ref.", StringComparison.Ordinal))
            {
                continue;
            }

            var growth = series[^1] - series[0];
            var ratio = (double)growth / finalizerGrowth;
            if (ratio < o.MinRatio || ratio > o.MaxRatio)
            {
                continue;
            }

            var deltas = Deltas(series);
            var corr = RobustStats.Correlation(finalizerDeltas, deltas);
            var stepsMatch = corr is { } c ? c >= o.Threshold : PerStepRatiosMatch(finalizerDeltas, deltas);
            if (stepsMatch)
            {
                inStep.Add(new Match(name, series, ratio, corr));
            }
        }

        // Best finalizable candidate first: one the collector saw in the finalization queue, then one it saw grow in step
        // with Finalizer, then growth closest to one Finalizer per instance.
        var finalizables = inStep
            .Where(m => !IsTask(m.Name, null) && PlausiblyFinalizable(m, finalizers))
            .OrderBy(m => FinalizableRank(marks.GetValueOrDefault(m.Name)))
            .ThenBy(m => Math.Abs(Math.Log(m.Ratio)))
            .ThenBy(m => m.Name, StringComparer.Ordinal);
        foreach (var finalizable in finalizables)
        {
            var task = inStep
                .Where(m => m.Name != finalizable.Name && IsTask(m.Name, finalizable.Name))
                .OrderBy(m => Math.Abs(Math.Log(m.Ratio)))
                .ThenBy(m => m.Name, StringComparer.Ordinal)
                .FirstOrDefault();
            if (task is null)
            {
                continue;
            }

            evidence["finalizableClass"] = finalizable.Name;
            evidence["timerTaskClass"] = task.Name;
            evidence[finalizable.Name] = Fmt.Series(finalizable.Series);
            evidence[task.Name] = Fmt.Series(task.Series);
            evidence["finalizableGrowthRatio"] = Fmt.N(finalizable.Ratio);
            evidence["timerTaskGrowthRatio"] = Fmt.N(task.Ratio);
            evidence["finalizableDeltaCorrelation"] = finalizable.Correlation is { } fc ? Fmt.N(fc) : "steady";
            evidence["timerTaskDeltaCorrelation"] = task.Correlation is { } tc ? Fmt.N(tc) : "steady";
            var span = samples[^1].Time - samples[0].Time;
            return new RuleResult(
                true,
                $"{FinalizerClass} grew by {Fmt.N(finalizerGrowth)} over {Fmt.Span(span)} in step with the finalizable class {finalizable.Name} " +
                $"(+{Fmt.N(finalizable.Series[^1] - finalizable.Series[0])}) and the timer task class {task.Name} (+{Fmt.N(task.Series[^1] - task.Series[0])}): " +
                "cancelled timer tasks stay in the timer's queue and keep their statements alive until their scheduled time.",
                evidence,
                [
                    "Upgrade the JDBC driver (or library) to a version that purges or does not schedule cancel tasks.",
                    "Use a shorter query timeout so cancelled tasks expire sooner.",
                    "Purge the timer periodically (java.util.Timer.purge()) so cancelled tasks are dropped.",
                ]);
        }

        evidence["inStepClasses"] = string.Join(", ", inStep.Select(m => m.Name));
        return RuleResult.NotBreached(
            $"{FinalizerClass} grew by {Fmt.N(finalizerGrowth)} but no finalizable class and timer task class grew in step with it.", evidence);
    }

    /// <summary>
    /// Whether <paramref name="m"/> can be the class whose instances the Finalizers register: not <c>java.lang.Object</c>
    /// (it does not override finalize(), yet every TimerTask holds one as its lock, so it grows 1:1 with the tasks), and
    /// never more instances than there are Finalizers (each live instance of a finalizable class has its own).
    /// </summary>
    private static bool PlausiblyFinalizable(Match m, long[] finalizers)
    {
        if (NeverFinalizable.Contains(m.Name)) return false;
        for (var i = 0; i < finalizers.Length; i++)
        {
            if (m.Series[i] > finalizers[i]) return false;
        }

        return true;
    }

    private static int FinalizableRank(HistogramMarks marks) =>
        marks.HasFlag(HistogramMarks.FinalizerQueue) ? 0 : marks.HasFlag(HistogramMarks.FinalizerStep) ? 1 : 2;

    /// <summary>Marks per class over the window's histograms (a class marked in any of them).</summary>
    private static Dictionary<string, HistogramMarks> MarksInWindow(List<HistogramObservation> samples)
    {
        var marks = new Dictionary<string, HistogramMarks>(StringComparer.Ordinal);
        foreach (var s in samples)
        {
            if (s.Marks is null) continue;
            foreach (var (name, m) in s.Marks) marks[name] = marks.GetValueOrDefault(name) | m;
        }

        return marks;
    }

    /// <summary>Timer task by name ("…Task", "TimerTask", configured patterns) or nested in the finalizable class.</summary>
    private bool IsTaskLike(string name, string? finalizable) =>
        name.EndsWith("Task", StringComparison.Ordinal)
        || name.Contains("TimerTask", StringComparison.Ordinal)
        || (finalizable is not null && name.StartsWith(finalizable + "$", StringComparison.Ordinal))
        || _options.TaskPatterns.Any(p => !string.IsNullOrEmpty(p) && name.Contains(p, StringComparison.Ordinal));

    /// <summary>With constant growth per interval correlation is undefined: then every interval's ratio must be in band.</summary>
    private bool PerStepRatiosMatch(double[] finalizerDeltas, double[] deltas)
    {
        for (var i = 0; i < deltas.Length; i++)
        {
            if (finalizerDeltas[i] <= 0)
            {
                return false;
            }

            var r = deltas[i] / finalizerDeltas[i];
            if (r < _options.MinRatio || r > _options.MaxRatio)
            {
                return false;
            }
        }

        return true;
    }

    private static double[] Deltas(long[] series)
    {
        var d = new double[series.Length - 1];
        for (var i = 1; i < series.Length; i++)
        {
            d[i - 1] = series[i] - series[i - 1];
        }

        return d;
    }

    /// <summary>Instances per class, for classes present in every histogram (a missing row is unknown, not zero).</summary>
    private static Dictionary<string, long[]> SeriesPresentInAll(List<HistogramObservation> samples)
    {
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        for (var i = 0; i < samples.Count; i++)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (name, instances, _) in samples[i].Rows ?? [])
            {
                if (name is null)
                {
                    continue;
                }

                if (i == 0 && !result.ContainsKey(name))
                {
                    result[name] = new long[samples.Count];
                }

                if (result.TryGetValue(name, out var series))
                {
                    // A class listed twice (two class loaders) counts once with both rows.
                    series[i] = seen.Add(name) ? instances : series[i] + instances;
                }
            }

            foreach (var name in result.Keys.Where(k => !seen.Contains(k)).ToList())
            {
                result.Remove(name);
            }
        }

        return result;
    }

    private sealed record Match(string Name, long[] Series, double Ratio, double? Correlation);
}

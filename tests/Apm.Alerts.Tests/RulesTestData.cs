using Apm.Alerts.Rules;

namespace Apm.Alerts.Tests;

/// <summary>Deterministic synthetic series for the rule tests.</summary>
internal static class RulesTestData
{
    public static readonly DateTimeOffset Now = new(2026, 1, 10, 12, 0, 0, TimeSpan.Zero);

    /// <summary>State with only finalizer samples: value(i) for samples every <paramref name="step"/> ending at Now.</summary>
    public static JvmRuleState Finalizer(int count, TimeSpan step, Func<int, long> pending, params (string, long)[] top) =>
        new("jvm-1", Now, Enumerable.Range(0, count).Select(i => new FinalizerObservation(Now - (step * (count - 1 - i)), pending(i), top)).ToList(), [], []);

    public static JvmRuleState Histograms(IReadOnlyList<HistogramObservation> histograms) => new("jvm-1", Now, [], histograms, []);

    public static JvmRuleState Heap(IReadOnlyList<HeapObservation> heap) => new("jvm-1", Now, [], [], heap);

    /// <summary>Histograms every 10 minutes ending at Now; each class gets its own instance series.</summary>
    public static List<HistogramObservation> HistogramSeries(long[] finalizer, params (string Class, long[] Instances)[] classes)
    {
        var list = new List<HistogramObservation>();
        for (var i = 0; i < finalizer.Length; i++)
        {
            var time = Now - TimeSpan.FromMinutes(10 * (finalizer.Length - 1 - i));
            var rows = new List<(string, long, long)> { ("java.lang.ref.Finalizer", finalizer[i], finalizer[i] * 32) };
            rows.AddRange(classes.Select(c => (c.Class, c.Instances[i], c.Instances[i] * 48)));
            list.Add(new HistogramObservation(time, finalizer[i], rows));
        }

        return list;
    }

    /// <summary>Deterministic noise in [-amplitude, amplitude].</summary>
    public static Func<int, long> Noise(int seed, int amplitude)
    {
        var values = new Random(seed);
        var cache = new Dictionary<int, long>();
        return i =>
        {
            if (!cache.TryGetValue(i, out var v))
            {
                v = values.Next(-amplitude, amplitude + 1);
                cache[i] = v;
            }

            return v;
        };
    }
}

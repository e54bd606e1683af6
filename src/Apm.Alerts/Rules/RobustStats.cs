using System.Buffers;

namespace Apm.Alerts.Rules;

/// <summary>Small robust statistics used by the rules; all inputs are validated, nothing is cached.</summary>
public static class RobustStats
{
    /// <summary>Cap on points fed to <see cref="TheilSenSlope(IReadOnlyList{ValueTuple{double, double}})"/>: above it the series is thinned evenly so the pair count stays bounded (~20k pairs).</summary>
    public const int MaxTheilSenPoints = 200;

    /// <summary>Median of the values; throws on an empty list.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            throw new ArgumentException("Median of an empty list is undefined.", nameof(values));
        }

        var copy = values.ToArray();
        return MedianInPlace(copy);
    }

    /// <summary>
    /// Theil–Sen slope: the median of the slopes of all pairs with distinct x. Tolerates up to ~29% of
    /// outliers, so one spike does not make a trend. Returns null with fewer than two distinct x.
    /// </summary>
    public static double? TheilSenSlope(IReadOnlyList<(double X, double Y)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        var n = points.Count;
        var buffer = ArrayPool<double>.Shared.Rent(Math.Max(2 * n, 1));
        try
        {
            for (var i = 0; i < n; i++)
            {
                buffer[i] = points[i].X;
                buffer[n + i] = points[i].Y;
            }

            return TheilSenSlope(buffer.AsSpan(0, n), buffer.AsSpan(n, n));
        }
        finally
        {
            ArrayPool<double>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Theil–Sen slope of the points (<paramref name="x"/>[i], <paramref name="y"/>[i]); null with fewer than two distinct x.
    /// Series longer than <see cref="MaxTheilSenPoints"/> are thinned evenly. Cost: one pooled buffer of the pair count and
    /// a selection (linear on average) instead of a sort; no allocation. Pairs whose slope is not a finite number are left out.
    /// </summary>
    public static double? TheilSenSlope(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length)
        {
            throw new ArgumentException($"Series lengths differ ({x.Length} vs {y.Length}).", nameof(y));
        }

        var n = Math.Min(x.Length, MaxTheilSenPoints);
        if (n < 2)
        {
            return null;
        }

        Span<double> tx = stackalloc double[n];
        Span<double> ty = stackalloc double[n];
        for (var k = 0; k < n; k++)
        {
            // Evenly thinned when longer than the cap (identity otherwise).
            var i = x.Length == n ? k : (int)((long)k * (x.Length - 1) / (n - 1));
            tx[k] = x[i];
            ty[k] = y[i];
        }

        var slopes = ArrayPool<double>.Shared.Rent(n * (n - 1) / 2);
        try
        {
            var m = 0;
            for (var i = 0; i < n; i++)
            {
                for (var j = i + 1; j < n; j++)
                {
                    var dx = tx[j] - tx[i];
                    if (dx == 0 || !double.IsFinite(dx))
                    {
                        continue;
                    }

                    var slope = (ty[j] - ty[i]) / dx;
                    if (double.IsFinite(slope))
                    {
                        slopes[m++] = slope;
                    }
                }
            }

            return m == 0 ? null : MedianInPlace(slopes.AsSpan(0, m));
        }
        finally
        {
            ArrayPool<double>.Shared.Return(slopes);
        }
    }

    /// <summary>Pearson correlation; null when either series is constant or shorter than two.</summary>
    public static double? Correlation(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count)
        {
            throw new ArgumentException($"Series lengths differ ({a.Count} vs {b.Count}).", nameof(b));
        }

        if (a.Count < 2)
        {
            return null;
        }

        var ma = a.Average();
        var mb = b.Average();
        double sab = 0, saa = 0, sbb = 0;
        for (var i = 0; i < a.Count; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }

        return saa <= 0 || sbb <= 0 ? null : sab / Math.Sqrt(saa * sbb);
    }

    /// <summary>Median by selection; reorders <paramref name="values"/>. NaN is ordered first, as <see cref="Array.Sort(Array)"/> does.</summary>
    private static double MedianInPlace(Span<double> values)
    {
        var mid = values.Length / 2;
        var upper = Select(values, mid);
        if (values.Length % 2 == 1)
        {
            return upper;
        }

        // After selecting mid, everything before it is not greater: the lower middle is their maximum.
        var lower = values[0];
        for (var i = 1; i < mid; i++)
        {
            if (values[i].CompareTo(lower) > 0) lower = values[i];
        }

        return (lower + upper) / 2.0;
    }

    /// <summary>
    /// The k-th smallest value (0-based), moving it to index k with nothing greater before it and nothing smaller after it
    /// (Hoare's selection with a median-of-three pivot; <see cref="double.CompareTo(double)"/> gives NaN a place, so it ends).
    /// </summary>
    private static double Select(Span<double> a, int k)
    {
        int lo = 0, hi = a.Length - 1;
        while (hi > lo)
        {
            var mid = lo + ((hi - lo) / 2);
            if (a[mid].CompareTo(a[lo]) < 0) (a[mid], a[lo]) = (a[lo], a[mid]);
            if (a[hi].CompareTo(a[lo]) < 0) (a[hi], a[lo]) = (a[lo], a[hi]);
            if (a[hi].CompareTo(a[mid]) < 0) (a[hi], a[mid]) = (a[mid], a[hi]);
            var pivot = a[mid];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (a[i].CompareTo(pivot) < 0) i++;
                while (a[j].CompareTo(pivot) > 0) j--;
                if (i <= j)
                {
                    (a[i], a[j]) = (a[j], a[i]);
                    i++;
                    j--;
                }
            }

            if (k <= j) hi = j;
            else if (k >= i) lo = i;
            else return a[k];
        }

        return a[k];
    }
}

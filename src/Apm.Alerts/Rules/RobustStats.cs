namespace Apm.Alerts.Rules;

/// <summary>Small robust statistics used by the rules; all inputs are validated, nothing is cached.</summary>
public static class RobustStats
{
    /// <summary>Cap on points fed to <see cref="TheilSenSlope"/>: above it the series is thinned evenly so the pair count stays bounded (~20k pairs).</summary>
    public const int MaxTheilSenPoints = 200;

    /// <summary>Median of the values; throws on an empty list.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            throw new ArgumentException("Median of an empty list is undefined.", nameof(values));
        }

        var sorted = values.ToArray();
        Array.Sort(sorted);
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0;
    }

    /// <summary>
    /// Theil–Sen slope: the median of the slopes of all pairs with distinct x. Tolerates up to ~29% of
    /// outliers, so one spike does not make a trend. Returns null with fewer than two distinct x.
    /// </summary>
    public static double? TheilSenSlope(IReadOnlyList<(double X, double Y)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        var pts = Thin(points);
        var slopes = new List<double>(pts.Count * (pts.Count - 1) / 2);
        for (var i = 0; i < pts.Count; i++)
        {
            for (var j = i + 1; j < pts.Count; j++)
            {
                var dx = pts[j].X - pts[i].X;
                if (dx != 0 && double.IsFinite(dx))
                {
                    slopes.Add((pts[j].Y - pts[i].Y) / dx);
                }
            }
        }

        return slopes.Count == 0 ? null : Median(slopes);
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

    private static IReadOnlyList<(double X, double Y)> Thin(IReadOnlyList<(double X, double Y)> points)
    {
        if (points.Count <= MaxTheilSenPoints)
        {
            return points;
        }

        var thinned = new List<(double X, double Y)>(MaxTheilSenPoints);
        for (var k = 0; k < MaxTheilSenPoints; k++)
        {
            thinned.Add(points[(int)((long)k * (points.Count - 1) / (MaxTheilSenPoints - 1))]);
        }

        return thinned;
    }
}

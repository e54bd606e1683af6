using System.Globalization;
using System.Text;

namespace Apm.Dashboard.Panels;

/// <summary>Turns a short series into the points of an SVG polyline in a 100×24 box (drawn on the server, no script needed).</summary>
public static class Sparkline
{
    /// <summary>Width of the view box.</summary>
    public const int Width = 100;

    /// <summary>Height of the view box.</summary>
    public const int Height = 24;

    /// <summary>"x,y x,y ..." scaled from 0 to the series' maximum; empty for fewer than two values.</summary>
    public static string Points(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count < 2) return string.Empty;
        var max = values.Max();
        if (max <= 0) max = 1;
        var sb = new StringBuilder(values.Count * 12);
        for (var i = 0; i < values.Count; i++)
        {
            var x = i * (double)Width / (values.Count - 1);
            var y = Height - 1 - (values[i] / max * (Height - 2));
            if (i > 0) sb.Append(' ');
            sb.Append(x.ToString("0.#", CultureInfo.InvariantCulture)).Append(',').Append(y.ToString("0.#", CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }
}

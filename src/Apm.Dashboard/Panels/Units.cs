using System.Globalization;

namespace Apm.Dashboard.Panels;

/// <summary>Formats values with their UCUM unit for people: bytes in KiB/MiB/GiB, ratios in percent, counts grouped.</summary>
public static class Units
{
    /// <summary>"–" for a missing value, else the value with its unit.</summary>
    public static string Format(double? value, string unit)
    {
        if (value is not { } v || double.IsNaN(v)) return "–";
        var c = CultureInfo.InvariantCulture;
        switch (unit)
        {
            case "By":
                string[] names = ["B", "KiB", "MiB", "GiB", "TiB"];
                var i = 0;
                var x = Math.Abs(v);
                while (x >= 1024 && i < names.Length - 1)
                {
                    x /= 1024;
                    i++;
                }

                return (v < 0 ? "-" : string.Empty) + x.ToString(i == 0 ? "0" : x < 10 ? "0.0" : "0", c) + " " + names[i];
            case "1":
                return (v * 100).ToString(v * 100 < 10 ? "0.0" : "0", c) + " %";
            case "s":
                return v < 1 ? (v * 1000).ToString("0.#", c) + " ms" : v.ToString("0.##", c) + " s";
            default:
                var suffix = unit.StartsWith('{') && unit.EndsWith('}') ? string.Empty : " " + unit.Replace("{", string.Empty, StringComparison.Ordinal).Replace("}", string.Empty, StringComparison.Ordinal);
                return (Math.Abs(v) >= 100 || v == Math.Floor(v) ? v.ToString("#,0", c) : v.ToString("0.##", c)) + suffix;
        }
    }
}

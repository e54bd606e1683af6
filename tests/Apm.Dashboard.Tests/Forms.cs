using System.Net;
using System.Text.RegularExpressions;

namespace Apm.Dashboard.Tests;

/// <summary>Posting the dashboard's forms as a browser does: the antiforgery token from the page, URL-encoded fields.</summary>
internal static partial class Forms
{
    /// <summary>The antiforgery token of the form on <paramref name="path"/> (the one posting to <paramref name="action"/> when given).</summary>
    public static async Task<string> TokenAsync(HttpClient client, string path = "login", string? action = null)
    {
        var html = await client.GetStringAsync(new Uri(path, UriKind.Relative));
        var start = 0;
        if (action is not null)
        {
            start = html.IndexOf($"action=\"{action}\"", StringComparison.Ordinal);
            Assert.True(start >= 0, $"no form posting to {action} on {path}");
        }

        var m = TokenPattern().Match(html, start);
        Assert.True(m.Success, "no antiforgery token in the form of " + path);
        return WebUtility.HtmlDecode(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value);
    }

    /// <summary>An application/x-www-form-urlencoded body.</summary>
    public static FormUrlEncodedContent Encoded(params (string Key, string Value)[] fields) =>
        new(fields.Select(f => new KeyValuePair<string, string>(f.Key, f.Value)));

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"|type=\"hidden\" name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex TokenPattern();
}

using System.Globalization;

namespace Apm.Jvm.Attach;

/// <summary>
/// The fields of /proc/&lt;pid&gt;/status that the attach handshake needs: credentials, namespace pid and
/// signal masks. Parsed from text so that the mapping from status text to failure reasons is testable.
/// </summary>
/// <param name="State">First letter of the State line (R, S, Z, ...); Z and X mean the process has exited.</param>
/// <param name="EffectiveUid">Second value of the Uid line; the JVM accepts peers with this euid or root.</param>
/// <param name="EffectiveGid">Second value of the Gid line.</param>
/// <param name="NamespacePid">Last value of NStgid: the pid the JVM sees in its own pid namespace (names its files).</param>
/// <param name="SignalsIgnored">SigIgn mask: bit n-1 set means signal n is ignored.</param>
/// <param name="SignalsCaught">SigCgt mask: bit n-1 set means signal n has a handler.</param>
public sealed record ProcessStatus(char State, int EffectiveUid, int EffectiveGid, int NamespacePid,
    ulong SignalsIgnored, ulong SignalsCaught)
{
    /// <summary>SIGQUIT's number on Linux; the attach listener starts when it receives this signal.</summary>
    public const int Sigquit = 3;

    private const ulong SigquitMask = 1UL << (Sigquit - 1);

    /// <summary>Whether the process has exited (zombie or dead) even though /proc still lists it.</summary>
    public bool HasExited => State is 'Z' or 'X';

    /// <summary>Whether SIGQUIT is ignored: such a JVM never starts its attach listener.</summary>
    public bool IgnoresSigquit => (SignalsIgnored & SigquitMask) != 0;

    /// <summary>Whether a SIGQUIT handler is installed: without one, SIGQUIT would terminate the process.</summary>
    public bool CatchesSigquit => (SignalsCaught & SigquitMask) != 0;

    /// <summary>Parses the text of /proc/&lt;pid&gt;/status; throws <see cref="FormatException"/> when a needed line is missing.</summary>
    public static ProcessStatus Parse(string text, int pid)
    {
        ArgumentNullException.ThrowIfNull(text);
        char state = '?';
        int? euid = null, egid = null, nspid = null;
        ulong sigIgn = 0, sigCgt = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            var colon = rawLine.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) continue;
            var key = rawLine[..colon];
            var value = rawLine[(colon + 1)..].Trim();
            var fields = value.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            switch (key)
            {
                case "State" when value.Length > 0:
                    state = value[0];
                    break;
                case "Uid" when fields.Length >= 2:
                    euid = ParseInt(fields[1], key, pid);
                    break;
                case "Gid" when fields.Length >= 2:
                    egid = ParseInt(fields[1], key, pid);
                    break;
                case "NStgid" when fields.Length >= 1:
                    nspid = ParseInt(fields[^1], key, pid);
                    break;
                case "SigIgn" when fields.Length == 1:
                    sigIgn = ParseMask(fields[0], key, pid);
                    break;
                case "SigCgt" when fields.Length == 1:
                    sigCgt = ParseMask(fields[0], key, pid);
                    break;
                default:
                    break;
            }
        }

        if (euid is null || egid is null)
            throw new FormatException($"/proc/{pid}/status has no Uid or Gid line");

        // Kernels before 4.1 have no NStgid line: such a process is in our pid namespace.
        return new ProcessStatus(state, euid.Value, egid.Value, nspid ?? pid, sigIgn, sigCgt);
    }

    private static int ParseInt(string s, string key, int pid) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new FormatException($"/proc/{pid}/status: {key} value '{s}' is not a number");

    private static ulong ParseMask(string s, string key, int pid) =>
        ulong.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new FormatException($"/proc/{pid}/status: {key} value '{s}' is not a hex mask");
}

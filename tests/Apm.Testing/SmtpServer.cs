using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Apm.Testing;

/// <summary>
/// Debian's real SMTP server (python3-aiosmtpd with its Debugging handler) on a free 127.0.0.1 port. The handler prints
/// every accepted message between fixed marker lines on stdout; this class collects them as <see cref="ReceivedMail"/>.
/// <see cref="Stop"/> and <see cref="StartAsync()"/> again (same port) simulate an outage; Dispose kills the process.
/// </summary>
public sealed class SmtpServer : IDisposable
{
    private const string Python = "/usr/bin/python3";
    private const string BeginMarker = "---------- MESSAGE FOLLOWS ----------";
    private const string EndMarker = "------------ END MESSAGE ------------";
    private static readonly TimeSpan StartupLimit = TimeSpan.FromSeconds(30);

    private readonly object _gate = new();
    private readonly List<ReceivedMail> _messages = [];
    private readonly StringBuilder _log = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private StringBuilder? _current;
    private Process? _process;

    private readonly string? _tlsCert;
    private readonly string? _tlsKey;
    private readonly (string User, string Password)? _login;
    private DirectoryInfo? _scriptDir;

    private SmtpServer(int port, string? tlsCert = null, string? tlsKey = null, (string User, string Password)? login = null)
    {
        Port = port;
        _tlsCert = tlsCert;
        _tlsKey = tlsKey;
        _login = login;
    }

    /// <summary>
    /// A small aiosmtpd program (Debian's module, run by its interpreter) that requires AUTH (LOGIN or PLAIN) before MAIL
    /// and accepts only the given user and password: over plain TCP (auth_require_tls=False), or with a certificate
    /// (APM_TEST_SMTP_TLSCERT/KEY) requiring STARTTLS first. It prints every message the
    /// way the Debugging handler does, and one line per login attempt ("AUTH LOGIN ok user" / "AUTH LOGIN refused user")
    /// into <see cref="Log"/>; passwords are never printed.
    /// </summary>
    private const string LoginScript = """
        import os, sys, threading
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Debugging
        from aiosmtpd.smtp import AuthResult, LoginPassword

        host, port = sys.argv[1], int(sys.argv[2])
        user = os.environ["APM_TEST_SMTP_USER"].encode()
        password = os.environ["APM_TEST_SMTP_PASSWORD"].encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
            login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
            print("AUTH %s %s %s" % (mechanism, "ok" if ok else "refused", login), file=sys.stderr, flush=True)
            return AuthResult(success=ok, handled=False)

        class Handler(Debugging):
            # System.Net.Mail sends "AUTH login ..." and aiosmtpd 1.4 matches mechanism names case-sensitively.
            async def auth_login(self, server, args):
                return await server.auth_LOGIN(server, args)

        tls = {}
        if os.environ.get("APM_TEST_SMTP_TLSCERT"):
            import ssl
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(os.environ["APM_TEST_SMTP_TLSCERT"], os.environ["APM_TEST_SMTP_TLSKEY"])
            tls = dict(tls_context=context, require_starttls=True)

        controller = Controller(Handler(sys.stdout), hostname=host, port=port, authenticator=authenticator,
                                auth_required=True, auth_require_tls=bool(tls), **tls)
        controller.start()
        threading.Event().wait()
        """;

    /// <summary>The SMTP port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>Host to connect to.</summary>
    public static string Host => "127.0.0.1";

    /// <summary>True while the server process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Messages received so far (across restarts), in arrival order.</summary>
    public IReadOnlyList<ReceivedMail> Messages
    {
        get
        {
            lock (_gate) return _messages.ToArray();
        }
    }

    /// <summary>
    /// Starts aiosmtpd on a free port and waits until it accepts connections. With a certificate and key (PEM) it offers
    /// STARTTLS and requires it before MAIL (aiosmtpd's default with --tlscert).
    /// </summary>
    public static Task<SmtpServer> StartNewAsync(string? tlsCert = null, string? tlsKey = null) =>
        StartedAsync(new SmtpServer(FreePort.Next(), tlsCert, tlsKey));

    /// <summary>
    /// Starts a server that requires login with <paramref name="user"/> and <paramref name="password"/> (see
    /// <see cref="LoginScript"/>); with a certificate and key (PEM) it requires STARTTLS before the login.
    /// </summary>
    public static Task<SmtpServer> StartWithLoginAsync(string user, string password, string? tlsCert = null, string? tlsKey = null) =>
        StartedAsync(new SmtpServer(FreePort.Next(), tlsCert, tlsKey, (user, password)));

    /// <summary>Starts <paramref name="server"/> and returns it, or disposes it when it does not start.</summary>
    private static async Task<SmtpServer> StartedAsync(SmtpServer server)
    {
        try
        {
            await server.StartAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Starts the server (again) on <see cref="Port"/>; throws with its output when it does not come up.</summary>
    public async Task StartAsync()
    {
        if (IsRunning) throw new InvalidOperationException("The SMTP server is already running.");
        _process?.Dispose();
        lock (_gate) _current = null; // a message cut off by Stop() never completes
        var psi = new ProcessStartInfo(Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (_login is { } login)
        {
            _scriptDir ??= Directory.CreateTempSubdirectory("apm-smtp-login-");
            var script = Path.Combine(_scriptDir.FullName, "login_smtpd.py");
            await File.WriteAllTextAsync(script, LoginScript).ConfigureAwait(false);
            foreach (var a in new[] { "-u", script, Host, Port.ToString(System.Globalization.CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
            psi.Environment["APM_TEST_SMTP_USER"] = login.User;
            psi.Environment["APM_TEST_SMTP_PASSWORD"] = login.Password;
            if (_tlsCert is not null && _tlsKey is not null)
            {
                psi.Environment["APM_TEST_SMTP_TLSCERT"] = _tlsCert;
                psi.Environment["APM_TEST_SMTP_TLSKEY"] = _tlsKey;
            }
        }
        else
        {
            foreach (var a in new[] { "-u", "-m", "aiosmtpd", "-n", "-l", $"{Host}:{Port}" }) psi.ArgumentList.Add(a);
            if (_tlsCert is not null && _tlsKey is not null)
            {
                foreach (var a in new[] { "--tlscert", _tlsCert, "--tlskey", _tlsKey }) psi.ArgumentList.Add(a);
            }

            foreach (var a in new[] { "-c", "aiosmtpd.handlers.Debugging" }) psi.ArgumentList.Add(a);
        }

        psi.Environment["PYTHONUNBUFFERED"] = "1";
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_gate) _log.AppendLine(e.Data);
        };
        if (!process.Start()) throw new InvalidOperationException($"{Python} -m aiosmtpd did not start.");
        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited) throw new InvalidOperationException($"aiosmtpd exited with {process.ExitCode} before listening on port {Port}:\n{Log()}");
            if (await CanConnectAsync().ConfigureAwait(false)) return;
            if (deadline.Elapsed > StartupLimit)
            {
                Stop();
                throw new TimeoutException($"aiosmtpd did not accept connections on port {Port} within {StartupLimit.TotalSeconds} s:\n{Log()}");
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>Kills the server (its port refuses connections afterwards); received messages are kept.</summary>
    public void Stop()
    {
        var process = _process;
        if (process is null) return;
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <summary>
    /// Waits until at least <paramref name="count"/> messages arrived; returns them. Throws after <paramref name="timeout"/>
    /// (30 s by default: a guard against hangs, not a performance assertion) with what did arrive.
    /// </summary>
    public async Task<IReadOnlyList<ReceivedMail>> WaitForMessagesAsync(int count, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_messages.Count >= count) return _messages.ToArray();
                changed = _changed.Task;
            }

            var left = limit - clock.Elapsed;
            if (left <= TimeSpan.Zero || await Task.WhenAny(changed, Task.Delay(left)).ConfigureAwait(false) != changed)
                throw new TimeoutException($"Expected {count} messages at the SMTP server, got {Messages.Count}:\n{Log()}");
        }
    }

    /// <summary>
    /// Waits until <see cref="Log"/> contains <paramref name="text"/> (its stderr is read asynchronously, so a line can
    /// arrive after the client saw the answer); returns false after <paramref name="timeout"/> (10 s by default, a guard
    /// against hangs).
    /// </summary>
    public async Task<bool> WaitForLogAsync(string text, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        while (!Log().Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed > (timeout ?? TimeSpan.FromSeconds(10))) return false;
            await Task.Delay(20).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>The server's stderr (startup errors, tracebacks).</summary>
    public string Log()
    {
        lock (_gate) return _log.ToString();
    }

    /// <summary>Kills the server.</summary>
    public void Dispose()
    {
        Stop();
        _process?.Dispose();
        _process = null;
        _scriptDir?.Delete(recursive: true);
        _scriptDir = null;
    }

    private async Task<bool> CanConnectAsync()
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(Host, Port).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_gate)
        {
            if (_current is null)
            {
                if (line == BeginMarker) _current = new StringBuilder();
                else _log.AppendLine(line);
                return;
            }

            if (line == EndMarker)
            {
                _messages.Add(new ReceivedMail(_current.ToString()));
                _current = null;
                var changed = _changed;
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                changed.TrySetResult();
                return;
            }

            _current.Append(line).Append('\n');
        }
    }
}

/// <summary>
/// One message as aiosmtpd printed it (headers, blank line, body; lines joined with LF), with a small MIME reader for
/// assertions: unfolded headers, decoded encoded-word subjects, and decoded leaf parts of multipart bodies.
/// </summary>
public sealed partial class ReceivedMail
{
    /// <summary>Wraps the raw text of one message.</summary>
    public ReceivedMail(string raw)
    {
        Raw = raw;
        (Headers, Body) = SplitHeaders(raw);
    }

    /// <summary>The message text exactly as printed by the server.</summary>
    public string Raw { get; }

    /// <summary>Top-level headers, unfolded, in order (name, value).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    /// <summary>Everything after the header block.</summary>
    public string Body { get; }

    /// <summary>The first header named <paramref name="name"/> (case-insensitive), or null.</summary>
    public string? Header(string name) => Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>Decoded Subject (RFC 2047 B and Q encoded words).</summary>
    public string Subject => DecodeWords(Header("Subject") ?? "");

    /// <summary>Decoded text of the first leaf part whose Content-Type starts with <paramref name="mediaType"/>, or null.</summary>
    public string? Part(string mediaType) =>
        Parts().FirstOrDefault(p => p.ContentType.StartsWith(mediaType, StringComparison.OrdinalIgnoreCase)).Text;

    /// <summary>All leaf parts: content type and decoded text (base64, quoted-printable or as is; UTF-8).</summary>
    public IReadOnlyList<(string ContentType, string Text)> Parts()
    {
        var result = new List<(string, string)>();
        CollectParts(Headers, Body, result, depth: 0);
        return result;
    }

    private static void CollectParts(IReadOnlyList<KeyValuePair<string, string>> headers, string body, List<(string, string)> into, int depth)
    {
        string Get(string n) => headers.FirstOrDefault(h => string.Equals(h.Key, n, StringComparison.OrdinalIgnoreCase)).Value ?? "";
        var type = Get("Content-Type");
        if (type.Length == 0) type = "text/plain";
        if (type.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase) && depth < 10)
        {
            var m = BoundaryRegex().Match(type);
            if (!m.Success) throw new FormatException($"multipart without boundary: {type}");
            var boundary = "--" + (m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value);
            var sections = body.Split('\n').Aggregate(new List<StringBuilder> { new() }, (acc, line) =>
            {
                var l = line.TrimEnd('\r');
                if (l == boundary || l == boundary + "--") acc.Add(new StringBuilder());
                else acc[^1].Append(line).Append('\n');
                return acc;
            });
            // The text before the first boundary is the preamble, after the closing one the epilogue.
            foreach (var section in sections.Skip(1).Take(sections.Count - 2))
            {
                var (h, b) = SplitHeaders(section.ToString());
                CollectParts(h, b, into, depth + 1);
            }

            return;
        }

        var encoding = Get("Content-Transfer-Encoding").Trim().ToUpperInvariant();
        var text = encoding switch
        {
            "BASE64" => Encoding.UTF8.GetString(Convert.FromBase64String(string.Concat(body.Where(c => !char.IsWhiteSpace(c))))),
            "QUOTED-PRINTABLE" => DecodeQuotedPrintable(body),
            _ => body,
        };
        into.Add((type, text));
    }

    private static (IReadOnlyList<KeyValuePair<string, string>> Headers, string Body) SplitHeaders(string text)
    {
        var headers = new List<KeyValuePair<string, string>>();
        var lines = text.Split('\n');
        var i = 0;
        for (; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Length == 0)
            {
                i++;
                break;
            }

            if ((line[0] == ' ' || line[0] == '\t') && headers.Count > 0)
            {
                // Unfolding removes only the line break; the whitespace around it is part of the value (RFC 5322 2.2.3).
                headers[^1] = new(headers[^1].Key, headers[^1].Value + line);
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0) headers.Add(new(line[..colon].Trim(), line[(colon + 1)..].TrimStart()));
        }

        return (headers.Select(h => new KeyValuePair<string, string>(h.Key, h.Value.TrimEnd())).ToList(), string.Join('\n', lines.Skip(i)));
    }

    private static string DecodeQuotedPrintable(string body)
    {
        var bytes = new List<byte>();
        var s = body.Replace("=\r\n", "", StringComparison.Ordinal).Replace("=\n", "", StringComparison.Ordinal);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '=' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static string DecodeWords(string value)
    {
        // Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
        var joined = AdjacentWordsRegex().Replace(value, "?==?");
        return EncodedWordRegex().Replace(joined, m =>
        {
            var charset = Encoding.GetEncoding(m.Groups[1].Value);
            var data = m.Groups[3].Value;
            return m.Groups[2].Value.ToUpperInvariant() == "B"
                ? charset.GetString(Convert.FromBase64String(data))
                : DecodeQuotedPrintable(data.Replace('_', ' '));
        });
    }

    [GeneratedRegex("boundary=(?:\"([^\"]+)\"|([^;\\s]+))", RegexOptions.IgnoreCase)]
    private static partial Regex BoundaryRegex();

    [GeneratedRegex(@"\?=\s+=\?")]
    private static partial Regex AdjacentWordsRegex();

    [GeneratedRegex(@"=\?([^?]+)\?([BbQq])\?([^?]*)\?=")]
    private static partial Regex EncodedWordRegex();
}

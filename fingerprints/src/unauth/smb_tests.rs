//! The SMB null-session check against what Samba 4.17 (Debian 12) really sent to it
//! (`testdata/smb-*.hex`, recorded from the lab's two smbd of `scripts/lab.d/29-smb.sh`),
//! and against replies changed from those.

use super::srvsvc::{self, Shares};
use super::*;
use proptest::prelude::*;

const OPEN: &str = include_str!("testdata/smb-open.hex");
const LOCKED: &str = include_str!("testdata/smb-locked.hex");

fn frames(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

/// The replies as the check reads them: Samba's interim STATUS_PENDING (while it starts
/// samba-dcerpcd) arrives in the same read as the bind's answer.
fn open_replies() -> Vec<Vec<u8>> {
    let f = frames(OPEN);
    assert_eq!(
        f.len(),
        8,
        "negotiate, 2 session setups, tree, create, 3 ioctl"
    );
    vec![
        f[0].clone(),
        f[1].clone(),
        f[2].clone(),
        f[3].clone(),
        f[4].clone(),
        [f[5].clone(), f[6].clone()].concat(),
        f[7].clone(),
    ]
}

fn smb_banner(dialect: &str) -> Banner {
    Banner {
        protocol: "smb".into(),
        fields: [("dialect".to_owned(), dialect.to_owned())].into(),
        ..Banner::default()
    }
}

fn seen(b: &Banner, login_checks: bool) -> Seen<'_> {
    Seen {
        banner: b,
        http_response: None,
        host: "198.19.1.240:445",
        login_checks,
    }
}

/// Plans the check, answers each step with the next reply; the requests and verdict.
fn run(replies: &[Vec<u8>]) -> (Vec<Vec<u8>>, Option<Unauth>) {
    let b = smb_banner("3.1.1");
    let mut check = plan(&seen(&b, true)).expect("the smb check");
    let mut sent = Vec::new();
    let mut step = check.first();
    let mut replies = replies.iter();
    loop {
        match step {
            Step::Done(v) => return (sent, v),
            Step::Connect(b) | Step::Send(b) => {
                sent.push(b);
                let Some(r) = replies.next() else {
                    return (sent, None);
                };
                assert!(check.complete(r), "reply {} complete", sent.len());
                step = check.on_reply(r);
            }
        }
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn open_samba_gives_the_session_ipc_and_its_share_list() {
    let (sent, v) = run(&open_replies());
    let v = v.expect("a verdict");
    assert_eq!(
        (v.check.as_str(), v.open, v.login),
        ("smb-null-session", true, true)
    );
    assert_eq!(
        v.evidence,
        "smb null session accepted (SMB 3.1.1, server SMB_OPEN, domain SMB_OPEN), IPC$ \
         reachable, NetShareEnumAll lists 3 shares (public, office, IPC$)"
    );
    assert_eq!(sent.len(), 7, "within MAX_STEPS");
    assert!(sent.len() <= MAX_STEPS);
    // Message ids 0..=6 in order, and the tree connect names IPC$ on the host.
    for (i, m) in sent.iter().enumerate() {
        assert_eq!(&m[4..8], b"\xfeSMB");
        assert_eq!(
            m[28..36],
            (i as u64).to_le_bytes(),
            "message id of request {i}"
        );
        let len = usize::from(m[1]) << 16 | usize::from(m[2]) << 8 | usize::from(m[3]);
        assert_eq!(len + 4, m.len(), "frame length of request {i}");
    }
    assert!(contains(&sent[3], &utf16("\\\\198.19.1.240\\IPC$")));
    assert!(contains(&sent[4], &utf16("srvsvc")));
}

#[test]
fn the_login_is_anonymous() {
    let (sent, _) = run(&open_replies());
    // The AUTHENTICATE_MESSAGE: LM response one zero byte, NT response, domain, user and
    // workstation empty, NTLMSSP_ANONYMOUS set ([MS-NLMP] 3.1.5.1.2).
    let at = sent[2]
        .windows(8)
        .position(|w| w == b"NTLMSSP\0")
        .expect("ntlmssp");
    let m = &sent[2][at..];
    assert_eq!(m[8..12], 3u32.to_le_bytes());
    assert_eq!(m[12..14], 1u16.to_le_bytes(), "LM response length");
    let lm_at = u32::from_le_bytes([m[16], m[17], m[18], m[19]]) as usize;
    assert_eq!(m[lm_at], 0);
    for field in 0..5 {
        let f = 20 + field * 8;
        assert_eq!(m[f..f + 2], [0, 0], "field {field} empty");
    }
    let flags = u32::from_le_bytes([m[60], m[61], m[62], m[63]]);
    assert_ne!(flags & 0x800, 0, "NTLMSSP_ANONYMOUS");
    assert_eq!(flags & 0x4000_0000, 0, "no key exchange without a key");
}

#[test]
fn locked_samba_refuses_ipc_and_gives_no_finding() {
    let (sent, v) = run(&frames(LOCKED));
    let v = v.expect("a verdict");
    assert_eq!((v.open, v.login), (false, true));
    assert_eq!(
        v.evidence,
        "smb null session accepted (SMB 3.1.1, server SMB_LOCKED, domain SMB_LOCKED), IPC$ \
         refused (STATUS_ACCESS_DENIED 0xc0000022)"
    );
    assert_eq!(sent.len(), 4, "no pipe opened");
}

#[test]
fn a_refused_session_is_recorded_closed() {
    let mut r = open_replies();
    // The second SESSION_SETUP answered STATUS_LOGON_FAILURE.
    r[2][12..16].copy_from_slice(&0xc000_006du32.to_le_bytes());
    let (sent, v) = run(&r);
    let v = v.expect("a verdict");
    assert!(!v.open);
    assert!(
        v.evidence
            .starts_with("smb null session refused (STATUS_LOGON_FAILURE 0xc000006d;"),
        "{}",
        v.evidence
    );
    assert_eq!(sent.len(), 3);
}

#[test]
fn after_ipc_a_silent_pipe_is_recorded_not_flagged() {
    // Up to the CREATE answered; the bind gets nothing back (deadline, close).
    let r = open_replies();
    let b = smb_banner("3.1.1");
    let mut check = plan(&seen(&b, true)).expect("check");
    let mut step = check.first();
    for reply in &r[..5] {
        assert!(matches!(step, Step::Connect(_) | Step::Send(_)));
        step = check.on_reply(reply);
    }
    let Step::Done(Some(v)) = check.on_reply(b"") else {
        panic!("a verdict after IPC$");
    };
    assert!(!v.open);
    assert!(
        v.evidence
            .ends_with("IPC$ reachable, no share list (no answer)"),
        "{}",
        v.evidence
    );
}

/// A hardened server (Windows by default, Samba with `restrict anonymous = 1`): IPC$
/// for the null session, but the share list refused. Recorded, no finding.
#[test]
fn ipc_without_a_share_list_is_not_a_finding() {
    let mut r = open_replies();
    // NetShareEnumAll's IOCTL answered STATUS_ACCESS_DENIED.
    let last = r.len() - 1;
    r[last][12..16].copy_from_slice(&0xc000_0022u32.to_le_bytes());
    let (_, v) = run(&r);
    let v = v.expect("a verdict");
    assert!(!v.open);
    assert!(
        v.evidence.ends_with(
            "IPC$ reachable, NetShareEnumAll unanswered (STATUS_ACCESS_DENIED 0xc0000022)"
        ),
        "{}",
        v.evidence
    );
    // The pipe refused at CREATE.
    let mut r = open_replies();
    r[4][12..16].copy_from_slice(&0xc000_0022u32.to_le_bytes());
    let (sent, v) = run(&r[..5]);
    let v = v.expect("a verdict");
    assert!(!v.open);
    assert!(
        v.evidence
            .ends_with("srvsvc pipe not opened (STATUS_ACCESS_DENIED 0xc0000022)"),
        "{}",
        v.evidence
    );
    assert_eq!(sent.len(), 5);
}

#[test]
fn only_with_the_opt_in_and_only_smb2() {
    let b = smb_banner("3.1.1");
    assert!(
        plan(&seen(&b, false)).is_none(),
        "no login without the opt-in"
    );
    for smb1 in ["smb1", "NT LM 0.12"] {
        let b = smb_banner(smb1);
        assert!(plan(&seen(&b, true)).is_none(), "{smb1}");
    }
    let mut b = smb_banner("2.1");
    b.fields.insert("status".into(), "0xc00000bb".into());
    assert!(plan(&seen(&b, true)).is_none(), "an SMB2 error answer");
}

#[test]
fn replies_cut_anywhere_are_incomplete_or_end_quietly() {
    let b = smb_banner("3.1.1");
    let replies = open_replies();
    for stage in 0..replies.len() {
        let whole = &replies[stage];
        for cut in 0..whole.len() {
            let mut check = plan(&seen(&b, true)).expect("check");
            check.first();
            for r in &replies[..stage] {
                check.on_reply(r);
            }
            assert!(
                !check.complete(&whole[..cut]),
                "stage {stage}: {cut} of {} bytes is not a whole reply",
                whole.len()
            );
        }
    }
}

#[test]
fn share_lists_are_bounded_and_refusals_named() {
    // A NetrShareEnum response of 40 shares named s0..s39, written from [MS-SRVS].
    let mut stub = Vec::new();
    let w = |s: &mut Vec<u8>, v: u32| s.extend_from_slice(&v.to_le_bytes());
    for v in [1, 1, 0x20000, 40, 0x20004, 40] {
        w(&mut stub, v);
    }
    for i in 0..40 {
        w(&mut stub, 0x30000 + i);
        w(&mut stub, 0);
        w(&mut stub, 0);
    }
    for i in 0..40 {
        let name = utf16(&format!("s{i}\0"));
        let n = (name.len() / 2) as u32;
        for v in [n, 0, n] {
            w(&mut stub, v);
        }
        stub.extend_from_slice(&name);
        stub.resize(stub.len().div_ceil(4) * 4, 0);
    }
    for v in [40, 0, 0] {
        w(&mut stub, v);
    }
    let mut pdu = vec![5, 0, 2, 3, 0x10, 0, 0, 0];
    pdu.extend_from_slice(&((24 + stub.len()) as u16).to_le_bytes());
    pdu.extend_from_slice(&[0, 0, 2, 0, 0, 0]);
    pdu.extend_from_slice(&[0; 8]);
    pdu.extend_from_slice(&stub);
    match srvsvc::shares(&pdu) {
        Some(Shares::Listed { names, count }) => {
            assert_eq!(count, 40);
            assert_eq!(names.len(), srvsvc::MAX_NAMES);
            assert_eq!(names[15], "s15");
        }
        other => panic!("{other:?}"),
    }
    // The same call refused: a null container and WERR_ACCESS_DENIED.
    let mut refused = pdu[..24].to_vec();
    for v in [1u32, 1, 0, 0, 0, 5] {
        refused.extend_from_slice(&v.to_le_bytes());
    }
    let len = refused.len() as u16;
    refused[8..10].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        srvsvc::shares(&refused),
        Some(Shares::Refused(
            "srvsvc NetShareEnumAll refused: WERR 0x00000005 (ERROR_ACCESS_DENIED)".into()
        ))
    );
    // A fault PDU (nca_s_op_rng_error).
    let mut fault = vec![5, 0, 3, 3, 0x10, 0, 0, 0, 32, 0, 0, 0, 2, 0, 0, 0];
    fault.extend_from_slice(&[0; 8]);
    fault.extend_from_slice(&0x1c01_0002u32.to_le_bytes());
    fault.extend_from_slice(&[0; 4]);
    assert_eq!(
        srvsvc::shares(&fault),
        Some(Shares::Refused(
            "srvsvc NetShareEnumAll fault 0x1c010002".into()
        ))
    );
}

#[test]
fn the_server_name_drops_port_and_brackets() {
    for (host, want) in [
        ("198.19.1.240:445", "\\\\198.19.1.240\\IPC$"),
        ("[2001:2::5]:445", "\\\\2001:2::5\\IPC$"),
        ("files.lab.test", "\\\\files.lab.test\\IPC$"),
    ] {
        let b = smb_banner("3.1.1");
        let s = Seen {
            host,
            ..seen(&b, true)
        };
        let mut check = plan(&s).expect("check");
        check.first();
        let r = open_replies();
        check.on_reply(&r[0]);
        check.on_reply(&r[1]);
        let Step::Send(tree) = check.on_reply(&r[2]) else {
            panic!("tree connect");
        };
        assert!(contains(&tree, &utf16(want)), "{host}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any reply at any stage: no panic, a bounded verdict, and the check ends within
    /// its steps.
    #[test]
    fn hostile_replies_are_survived(
        stage in 0usize..7,
        pos in 0usize..600,
        byte in any::<u8>(),
        how in 0u8..6,
        noise in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let replies = open_replies();
        let stage = stage.min(replies.len() - 1);
        let mut rs: Vec<Vec<u8>> = replies[..stage].to_vec();
        let target = &replies[stage];
        let changed = crate::reader::test_support::mutate(target, pos % target.len(), byte, how);
        rs.push(if how == 5 { [changed, noise].concat() } else { changed });
        let b = smb_banner("3.1.1");
        let mut check = plan(&seen(&b, true)).expect("check");
        let mut step = check.first();
        let mut steps = 0;
        for r in &rs {
            if let Step::Done(_) = step { break; }
            let _ = check.complete(r);
            step = check.on_reply(r);
            steps += 1;
        }
        prop_assert!(steps <= MAX_STEPS);
        if let Step::Done(Some(v)) = step {
            prop_assert!(v.evidence.chars().count() <= EVIDENCE_CAP + 3);
            prop_assert!(v.evidence.chars().all(|c| (' '..='~').contains(&c)));
        }
    }
}

//! RFC 7143 sections 6.3, 11.12-11.13 and 12: the target side of a login, as a sans-IO state
//! machine fed one Login Request at a time.
//!
//! The target authenticates with CHAP when configured (RFC 7143 section 12.1.3, one-way or
//! mutual), checks the TargetName and the access list, negotiates the operational keys with a
//! [`Negotiator`], transits only when the initiator asks (RFC 7143 section 11.13.1), assigns the
//! TSIH in the final response, and reports failures as login status codes.

use super::chap::{
    check_challenge, decode_binary, encode_binary, new_challenge, parse_algorithm_list,
    parse_identifier, verify_response, ChapAlgorithm, ChapCredentials,
};
use super::error::{ChapError, LoginError, TextError};
use super::keys::{is_security_key, REJECT};
use super::kv::{encode_text, find, KeyValue, TextAccumulator};
use super::login::{
    valid_transition, LoginRequestHeader, LoginResponseHeader, LoginResponseParts, LoginStatus,
    Stage, ISCSI_VERSION, MAX_LOGIN_ROUNDS,
};
use super::negotiate::{
    NegotiationPhase, Negotiator, OperationalOffers, Role, SessionParams, SessionType,
};
use super::sendtargets::ExportedTarget;
use std::sync::Arc;

/// CHAP policy of a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetChapConfig {
    /// Initiator CHAP users (CHAP_N and secret) allowed to authenticate.
    pub users: Vec<ChapCredentials>,
    /// Our name and secret for mutual CHAP; None refuses initiators asking for mutual CHAP.
    pub mutual: Option<ChapCredentials>,
    /// Acceptable algorithms; the first in the initiator's CHAP_A list that is here wins.
    pub algorithms: Vec<ChapAlgorithm>,
}

/// Everything a target needs to answer logins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    pub targets: Vec<ExportedTarget>,
    /// Some: CHAP is required for every session (discovery included); None: no authentication.
    pub chap: Option<TargetChapConfig>,
    pub offers: OperationalOffers,
    /// TargetPortalGroupTag sent in the first login response.
    pub portal_group_tag: u16,
    /// Whether discovery sessions are served.
    pub allow_discovery: bool,
}

impl TargetConfig {
    /// A target configuration without CHAP, serving discovery, with default offers.
    pub fn new(targets: Vec<ExportedTarget>) -> TargetConfig {
        TargetConfig {
            targets,
            chap: None,
            offers: OperationalOffers::default(),
            portal_group_tag: 1,
            allow_discovery: true,
        }
    }
}

/// What a login step produced besides the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetOutcome {
    /// Send the response and wait for the next request.
    Continue,
    /// Send the response; the connection is now in the full feature phase.
    Complete(Box<SessionParams>),
    /// Send the response (it carries the failure status) and close the connection.
    Failed(LoginError),
}

/// One step's result: the response to send and what it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetStep {
    pub response: LoginResponseParts,
    pub outcome: TargetOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Auth {
    /// No AuthMethod seen yet.
    Start,
    /// AuthMethod=CHAP agreed; waiting for CHAP_A.
    AwaitAlgorithm,
    /// Challenge sent; waiting for CHAP_N/CHAP_R.
    AwaitResponse {
        algorithm: ChapAlgorithm,
        id: u8,
        challenge: Vec<u8>,
    },
    /// Authenticated (or no authentication needed).
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Fresh,
    InStage(Stage),
    Complete,
    Failed,
}

/// The target side of one login. See the module docs.
#[derive(Debug)]
pub struct TargetLogin {
    config: Arc<TargetConfig>,
    new_tsih: u16,
    state: State,
    auth: Auth,
    negotiator: Negotiator,
    accumulator: TextAccumulator,
    rounds: usize,
    isid: [u8; 6],
    params: SessionParams,
    /// Whether the first complete request text (with the names) was processed.
    identified: bool,
}

impl TargetLogin {
    /// A login that, when it succeeds, creates a session with TSIH `new_tsih` (non-zero).
    pub fn new(config: Arc<TargetConfig>, new_tsih: u16) -> TargetLogin {
        let negotiator = Negotiator::new(Role::Target, config.offers.clone());
        TargetLogin {
            config,
            new_tsih,
            state: State::Fresh,
            auth: Auth::Start,
            negotiator,
            accumulator: TextAccumulator::default(),
            rounds: 0,
            isid: [0; 6],
            params: SessionParams::default(),
            identified: false,
        }
    }

    /// Whether the login reached the full feature phase.
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// The ISID of the initiator (valid after the first request).
    pub fn isid(&self) -> [u8; 6] {
        self.isid
    }

    /// The TSIH the session gets.
    pub fn tsih(&self) -> u16 {
        self.new_tsih
    }

    /// The session parameters negotiated so far (final once complete).
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Handles one Login Request (header fields and its data segment).
    pub fn step(&mut self, req: &LoginRequestHeader, data: &[u8]) -> TargetStep {
        match self.step_inner(req, data) {
            Ok(step) => step,
            Err(e) => {
                self.state = State::Failed;
                TargetStep {
                    response: LoginResponseParts {
                        header: LoginResponseHeader {
                            transit: false,
                            cont: false,
                            csg: req.csg,
                            nsg: Stage(0),
                            version_max: ISCSI_VERSION,
                            version_active: ISCSI_VERSION,
                            isid: req.isid,
                            tsih: req.tsih,
                            status: e.status(),
                        },
                        text: Vec::new(),
                    },
                    outcome: TargetOutcome::Failed(e),
                }
            }
        }
    }

    fn response_header(&self, req: &LoginRequestHeader, transit: bool) -> LoginResponseHeader {
        let complete = transit && req.nsg == Stage::FULL_FEATURE_PHASE;
        LoginResponseHeader {
            transit,
            cont: false,
            csg: req.csg,
            nsg: if transit { req.nsg } else { Stage(0) },
            version_max: ISCSI_VERSION,
            version_active: ISCSI_VERSION,
            isid: req.isid,
            tsih: if complete { self.new_tsih } else { req.tsih },
            status: LoginStatus::SUCCESS,
        }
    }

    fn step_inner(
        &mut self,
        req: &LoginRequestHeader,
        data: &[u8],
    ) -> Result<TargetStep, LoginError> {
        let current = match &self.state {
            State::Complete | State::Failed => return Err(LoginError::Finished),
            State::Fresh => None,
            State::InStage(s) => Some(*s),
        };
        self.rounds += 1;
        if self.rounds > MAX_LOGIN_ROUNDS {
            return Err(LoginError::TooManyRounds {
                limit: MAX_LOGIN_ROUNDS,
            });
        }
        if req.transit && req.cont {
            return Err(LoginError::TransitAndContinue);
        }
        match current {
            None => {
                if req.version_min > ISCSI_VERSION || req.version_max < req.version_min {
                    return Err(LoginError::UnsupportedVersion {
                        min: req.version_min,
                        max: req.version_max,
                    });
                }
                if req.tsih != 0 {
                    return Err(LoginError::SessionDoesNotExist { tsih: req.tsih });
                }
                if req.csg != Stage::SECURITY_NEGOTIATION
                    && req.csg != Stage::LOGIN_OPERATIONAL_NEGOTIATION
                {
                    return Err(LoginError::InvalidTransition {
                        csg: req.csg,
                        nsg: req.nsg,
                    });
                }
                self.isid = req.isid;
                self.state = State::InStage(req.csg);
            }
            Some(stage) => {
                if req.isid != self.isid || req.tsih != 0 {
                    return Err(LoginError::SessionIdentityChanged);
                }
                if req.csg != stage {
                    return Err(LoginError::UnexpectedStage {
                        expected: stage,
                        got: req.csg,
                    });
                }
            }
        }
        if req.transit && !valid_transition(req.csg, req.nsg) {
            return Err(LoginError::InvalidTransition {
                csg: req.csg,
                nsg: req.nsg,
            });
        }
        self.accumulator.push(data).map_err(LoginError::Text)?;
        if req.cont {
            // More text follows in the next request (RFC 7143 section 11.12.2).
            return Ok(TargetStep {
                response: LoginResponseParts {
                    header: self.response_header(req, false),
                    text: Vec::new(),
                },
                outcome: TargetOutcome::Continue,
            });
        }
        let pairs = self.accumulator.finish()?;
        let mut out: Vec<KeyValue> = Vec::new();
        let mut security: Vec<&KeyValue> = Vec::new();
        let mut operational: Vec<KeyValue> = Vec::new();
        let first = !self.identified;
        for kv in &pairs {
            match kv.key.as_str() {
                "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" => {
                    if !first {
                        return Err(TextError::KeyRenegotiated {
                            key: kv.key.clone(),
                        }
                        .into());
                    }
                }
                k if is_security_key(k) => security.push(kv),
                _ => operational.push(kv.clone()),
            }
        }
        if first {
            self.identify(&pairs)?;
            self.identified = true;
            if self.params.session_type == SessionType::Normal {
                out.push(KeyValue::new(
                    "TargetPortalGroupTag",
                    self.config.portal_group_tag.to_string(),
                ));
            }
            if let Some(alias) = self
                .config
                .targets
                .iter()
                .find(|t| Some(&t.name) == self.params.target_name.as_ref())
                .and_then(|t| t.alias.clone())
            {
                out.push(KeyValue::new("TargetAlias", alias));
            }
        }
        let chap_required = self.config.chap.is_some();
        if req.csg == Stage::SECURITY_NEGOTIATION {
            out.extend(self.authenticate(&security)?);
        } else {
            if let Some(kv) = security.first() {
                return Err(TextError::WrongPhase {
                    key: kv.key.clone(),
                    phase: "operational stage",
                }
                .into());
            }
            if self.auth != Auth::Done {
                if chap_required {
                    return Err(LoginError::AuthenticationRequired);
                }
                self.auth = Auth::Done;
            }
        }
        // Operational keys are accepted in the security stage too (several initiators send
        // them early); they are negotiated the same way.
        out.extend(
            self.negotiator
                .process(&operational, NegotiationPhase::Login)?,
        );
        let mut transit = req.transit;
        if req.csg == Stage::SECURITY_NEGOTIATION && self.auth != Auth::Done {
            if transit && self.auth == Auth::Start {
                // Leaving the security stage without AuthMethod means AuthMethod=None.
                if chap_required {
                    return Err(LoginError::AuthenticationRequired);
                }
                self.auth = Auth::Done;
            } else {
                transit = false;
            }
        }
        if req.csg == Stage::LOGIN_OPERATIONAL_NEGOTIATION
            || (transit && req.nsg == Stage::FULL_FEATURE_PHASE)
        {
            out.extend(self.negotiator.declarations());
        }
        if transit && !self.negotiator.pending().is_empty() {
            transit = false;
        }
        let header = self.response_header(req, transit);
        let text = encode_text(&out);
        let outcome = if transit {
            self.state = State::InStage(req.nsg);
            if req.nsg == Stage::FULL_FEATURE_PHASE {
                self.state = State::Complete;
                self.finish_params();
                TargetOutcome::Complete(Box::new(self.params.clone()))
            } else {
                TargetOutcome::Continue
            }
        } else {
            TargetOutcome::Continue
        };
        Ok(TargetStep {
            response: LoginResponseParts { header, text },
            outcome,
        })
    }

    fn finish_params(&mut self) {
        let mut p = self.negotiator.finish();
        p.session_type = self.params.session_type;
        p.initiator_name = std::mem::take(&mut self.params.initiator_name);
        p.initiator_alias = self.params.initiator_alias.take();
        p.target_name = self.params.target_name.take();
        p.target_alias = self
            .config
            .targets
            .iter()
            .find(|t| Some(&t.name) == p.target_name.as_ref())
            .and_then(|t| t.alias.clone());
        p.target_portal_group_tag = Some(self.config.portal_group_tag);
        self.params = p;
    }

    /// First request: InitiatorName, SessionType, TargetName, access list (RFC 7143 section
    /// 6.3: the first request carries InitiatorName and, for normal sessions, TargetName).
    fn identify(&mut self, pairs: &[KeyValue]) -> Result<(), LoginError> {
        let initiator = find(pairs, "InitiatorName").ok_or(LoginError::MissingKey {
            key: "InitiatorName",
        })?;
        if initiator.is_empty() {
            return Err(LoginError::MissingKey {
                key: "InitiatorName",
            });
        }
        let session_type = match find(pairs, "SessionType") {
            None => SessionType::Normal,
            Some(v) => SessionType::parse(v).ok_or_else(|| LoginError::UnsupportedSessionType {
                value: v.to_string(),
            })?,
        };
        if session_type == SessionType::Discovery && !self.config.allow_discovery {
            return Err(LoginError::UnsupportedSessionType {
                value: "Discovery".to_string(),
            });
        }
        self.params.session_type = session_type;
        self.params.initiator_name = initiator.to_string();
        self.params.initiator_alias = find(pairs, "InitiatorAlias").map(str::to_string);
        if session_type == SessionType::Normal {
            let name =
                find(pairs, "TargetName").ok_or(LoginError::MissingKey { key: "TargetName" })?;
            let target = self
                .config
                .targets
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| LoginError::TargetNotFound {
                    name: name.to_string(),
                })?;
            if !target.allows(initiator) {
                return Err(LoginError::NotAuthorized {
                    name: initiator.to_string(),
                });
            }
            self.params.target_name = Some(target.name.clone());
        }
        Ok(())
    }

    /// The security stage: AuthMethod, then CHAP_A, then CHAP_N/CHAP_R (and mutual CHAP_I/C).
    fn authenticate(&mut self, keys: &[&KeyValue]) -> Result<Vec<KeyValue>, LoginError> {
        let get = |k: &str| {
            keys.iter()
                .find(|kv| kv.key == k)
                .map(|kv| kv.value.as_str())
        };
        let mut out = Vec::new();
        let auth = std::mem::replace(&mut self.auth, Auth::Done);
        let chap = self.config.chap.as_ref();
        match auth {
            Auth::Start => {
                if let Some(kv) = keys.iter().find(|kv| kv.key.starts_with("CHAP_")) {
                    return Err(ChapError::UnexpectedKey {
                        key: kv.key.clone(),
                    }
                    .into());
                }
                let Some(offered) = get("AuthMethod") else {
                    self.auth = Auth::Start;
                    return Ok(out);
                };
                let methods: Vec<&str> = offered.split(',').collect();
                let want = if chap.is_some() { "CHAP" } else { "None" };
                if !methods.contains(&want) {
                    return Err(LoginError::NoAuthMethod {
                        offered: offered.to_string(),
                    });
                }
                out.push(KeyValue::new("AuthMethod", want));
                self.auth = if chap.is_some() {
                    Auth::AwaitAlgorithm
                } else {
                    Auth::Done
                };
            }
            Auth::AwaitAlgorithm => {
                let chap = chap.ok_or(LoginError::AuthenticationRequired)?;
                let list = get("CHAP_A").ok_or(ChapError::MissingKey { key: "CHAP_A" })?;
                let algorithm = parse_algorithm_list(list)
                    .into_iter()
                    .find(|a| a.is_supported() && chap.algorithms.contains(a))
                    .ok_or_else(|| ChapError::NoCommonAlgorithm {
                        value: list.to_string(),
                    })?;
                let (id, challenge) = new_challenge(algorithm);
                out.push(KeyValue::new("CHAP_A", algorithm.to_string()));
                out.push(KeyValue::new("CHAP_I", id.to_string()));
                out.push(KeyValue::new("CHAP_C", encode_binary(&challenge)));
                self.auth = Auth::AwaitResponse {
                    algorithm,
                    id,
                    challenge,
                };
            }
            Auth::AwaitResponse {
                algorithm,
                id,
                challenge,
            } => {
                let chap = chap.ok_or(LoginError::AuthenticationRequired)?;
                let name = get("CHAP_N").ok_or(ChapError::MissingKey { key: "CHAP_N" })?;
                let response =
                    decode_binary(get("CHAP_R").ok_or(ChapError::MissingKey { key: "CHAP_R" })?)?;
                let user = chap.users.iter().find(|u| u.name == name).ok_or_else(|| {
                    ChapError::UnknownName {
                        name: name.to_string(),
                    }
                })?;
                verify_response(algorithm, id, &user.secret, &challenge, &response)?;
                match (get("CHAP_I"), get("CHAP_C")) {
                    (None, None) => {}
                    (Some(i), Some(c)) => {
                        let mutual = chap.mutual.as_ref().ok_or(ChapError::UnexpectedKey {
                            key: "CHAP_C".to_string(),
                        })?;
                        let peer_id = parse_identifier(i)?;
                        let peer_challenge = decode_binary(c)?;
                        check_challenge(&peer_challenge)?;
                        if peer_challenge == challenge {
                            return Err(ChapError::ReflectedChallenge.into());
                        }
                        let answer = algorithm
                            .response(peer_id, &mutual.secret, &peer_challenge)
                            .ok_or(ChapError::NoCommonAlgorithm {
                                value: algorithm.to_string(),
                            })?;
                        out.push(KeyValue::new("CHAP_N", mutual.name.clone()));
                        out.push(KeyValue::new("CHAP_R", encode_binary(&answer)));
                    }
                    (None, Some(_)) => return Err(ChapError::MissingKey { key: "CHAP_I" }.into()),
                    (Some(_), None) => return Err(ChapError::MissingKey { key: "CHAP_C" }.into()),
                }
                self.auth = Auth::Done;
            }
            Auth::Done => {
                if let Some(kv) = keys.first() {
                    if kv.value != REJECT {
                        return Err(ChapError::UnexpectedKey {
                            key: kv.key.clone(),
                        }
                        .into());
                    }
                }
            }
        }
        Ok(out)
    }
}
